"""The dataset card: statistics, terms, rendering, offline YAML checks, release checks, CLI."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from huggingface_hub import DatasetCard
from PIL import Image

from recombinet_card import (
    CardCheckError,
    ReleaseCheckError,
    check_card,
    check_release,
    render_card,
    source_terms,
    validate_card_metadata,
    write_preview,
)
from recombinet_card import checks as checks_module
from recombinet_card.card import FG_RATIO_IMAGE, PREVIEW_IMAGE, build_card_data, release_summary
from recombinet_card.cli import add_subcommands, build_parser, main
from recombinet_card.schema import load_card_schema
from recombinet_card.statistics import (
    count_spread,
    histogram,
    normalise_outcomes,
    pruning_table,
    release_statistics,
    size_category,
)
from recombinet_card.terms import IMAGENET_TERMS_URL
from recombinet_hf.features import DATA_CONFIGS, release_features
from recombinet_hf.parquet_writer import max_row_group_bytes, shard_path, write_shard
from recombinet_hf.pool import BackgroundPool
from synthetic import CLASS_NAMES, make_release, make_photo, rows_for

OUTCOMES = {"train": {"kept": 12, "no_detection": 2, "error": 1}, "validation": {"kept": 12, "no_detection": 0, "error": 0}}


@pytest.fixture(scope="module")
def carded(tmp_path_factory) -> Path:
    """A synthetic ImageNet-sample release with outcomes, its card rendered once."""
    folder = make_release(
        tmp_path_factory.mktemp("carded"),
        fg_ratios=[0.1, 0.3, 0.55, 0.75],
        info={  # shaped like recombinet_builder.finalize's recombinet.json
            "source": {"spec": "sample", "kind": "sample", "wheel": "foolbox==3.3.4"},
            "license": "other", "license_name": "imagenet-terms-of-access", "license_link": IMAGENET_TERMS_URL,
            "outcomes": OUTCOMES, "error_reasons": {"train": {"decode_error": 1}, "validation": {}},
            "builder": {"name": "recombinet_builder", "settings": {"segment": "salient", "inpaint": "telea"}},
            "models": {"segmenter": {"name": "salient", "model": "u2netp"}},
            "class_names": CLASS_NAMES, "partial": False,
        },
    )
    render_card(folder)
    return folder


# -- statistics (pure) ------------------------------------------------------------------------


def test_count_spread_counts_empty_classes():
    spread = count_spread([0, 0, 0, 2], num_classes=4)
    assert (spread.min, spread.max, spread.empty_classes, spread.num_classes) == (0, 3, 2, 4)
    assert spread.median == 0.5 and spread.mean == 1.0
    with pytest.raises(ValueError, match="labels must lie in"):
        count_spread([0, 5], num_classes=3)


def test_histogram_bins_and_edges():
    hist = histogram([0.0, 0.04, 0.05, 0.5, 1.0, 1.2])
    assert len(hist.edges) == 21 and len(hist.counts) == 20
    assert hist.counts[0] == 2 and hist.counts[1] == 1 and hist.counts[10] == 1
    assert hist.counts[-1] == 2  # 1.0 and the clipped 1.2 land in the last bin
    assert sum(hist.counts) == 6


def test_pruning_table_matches_background_pool():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 10)
    ratios = rng.uniform(0, 1, size=len(labels))
    ratios[labels == 4] = 0.99  # a class that is all object
    for row in pruning_table(ratios, labels, min_per_class=8):
        assert row.kept == int((ratios < row.pt).sum()) and row.total == 50
        pool = BackgroundPool(
            idx=np.arange(50), keys=[str(i) for i in range(50)], labels=labels, fg_ratios=ratios,
            background_combination="same", pruning_threshold=row.pt, min_backgrounds_per_class=8,
        )
        assert row.fallback_classes == len(pool.fallback_classes), row.pt
    table = pruning_table(ratios, labels)
    assert table[0].fallback_classes >= 1 and table[-1].fallback_classes == 0  # the 0.99 class is kept at pt1.0


def test_normalise_outcomes_and_size_category():
    assert normalise_outcomes({"kept": 3, "error": ["a", "b"]}) == {"all": {"kept": 3, "error": 2}}
    assert normalise_outcomes(OUTCOMES)["train"] == {"kept": 12, "no_detection": 2, "error": 1}
    assert normalise_outcomes(None) == {}
    assert [size_category(n) for n in (0, 999, 1000, 1_281_167)] == ["n<1K", "n<1K", "1K<n<10K", "1M<n<10M"]
    assert set(size_category(10**n) for n in range(10)) <= set(load_card_schema()["size_categories"])


def test_release_statistics_from_columns():
    columns = {
        ("foregrounds", "train"): {"label": np.array([0, 1, 1]), "fg_ratio": np.array([0.1, 0.2, 0.9])},
        ("backgrounds", "train"): {"label": np.array([0, 1, 1]), "fg_ratio": np.array([0.1, 0.2, 0.9])},
        ("masks", "train"): {"label": np.array([0, 1, 1])},
    }
    stats = release_statistics(columns, 2, outcomes={"kept": 3})
    assert stats.counts == {"foregrounds": {"train": 3}, "backgrounds": {"train": 3}, "masks": {"train": 3}}
    assert stats.num_examples == 3 and stats.splits == ["train"]
    assert [row.kept for row in stats.pruning["train"]] == [2, 2, 2, 2, 2, 3]
    assert stats.outcomes == {"all": {"kept": 3}}


# -- terms ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "sample", "imagenet", "imagenet:/data/ILSVRC2012", "/data/ILSVRC2012", {"kind": "imagenet-folder", "spec": "/data/in1k"},
        {"kind": "sample", "spec": "sample", "wheel": "foolbox==3.3.4"},
    ],
)
def test_imagenet_sources_get_the_imagenet_terms(source):
    terms = source_terms({"source": source})
    assert terms.license == "other" and terms.license_link == IMAGENET_TERMS_URL
    assert terms.license_name == "imagenet-terms-of-access"
    assert terms.gated == "auto" and "extra_gated_prompt" in terms.extra_gated


def test_builder_license_fields_mark_imagenet():
    info = {"source": {"kind": "folder", "spec": "/data/x"}, "license": "other", "license_name": "imagenet-terms-of-access",
            "license_link": IMAGENET_TERMS_URL}
    assert source_terms(info).gated == "auto"
    assert source_terms({"source": {"kind": "folder", "spec": "/data/imagenet-like"}}).license == "unknown"


def test_free_text_licenses_become_other_or_unknown():
    terms = source_terms({"source": {"kind": "hf", "repo_id": "org/x"}, "license": "Custom License v2"})
    assert (terms.license, terms.license_name) == ("other", "custom-license-v2")
    assert terms.license_link == "https://huggingface.co/datasets/org/x"
    assert source_terms({"source": {"kind": "hf", "path": "/data/x"}, "license": "Custom"}).license == "unknown"
    assert source_terms({"source": "hf:org/y", "license": "CC-BY-4.0"}).license == "cc-by-4.0"


def test_other_sources_keep_their_license():
    terms = source_terms({"source": "hf:org/flowers", "license": "cc-by-4.0"})
    assert (terms.license, terms.gated, terms.extra_gated) == ("cc-by-4.0", False, {})
    assert source_terms({"source": {"kind": "hf", "repo_id": "org/pets"}}).license == "unknown"
    assert source_terms({}).license == "unknown"
    assert source_terms({"source": "sample", "gated": "manual"}).gated == "manual"
    assert source_terms({"source": "sample", "gated": False}).extra_gated == {}
    with pytest.raises(ValueError, match="`gated`"):
        source_terms({"source": "sample", "gated": "sometimes"})


# -- the rendered card ------------------------------------------------------------------------


def test_card_round_trips_with_metadata(carded):
    card = DatasetCard.load(carded / "README.md")
    info, names, statistics, terms = release_summary(carded)
    expected = build_card_data(carded, info, statistics, names, terms).to_dict()
    assert card.data.to_dict() == expected
    data = card.data.to_dict()
    assert data["license"] == "other" and data["license_link"] == IMAGENET_TERMS_URL
    assert data["license_name"] == "imagenet-terms-of-access" and data["extra_gated_prompt"]
    assert data["task_categories"] == ["image-classification"] and data["size_categories"] == ["n<1K"]
    assert "recombinet" in data["tags"] and data["pretty_name"]
    config_names = [entry["config_name"] for entry in data["configs"]]
    assert config_names == [*DATA_CONFIGS, "same-range-pt0.8", "all-range-pt1.0"]
    assert [info["config_name"] for info in data["dataset_info"]] == config_names
    assert check_card(carded).data.to_dict() == data
    # Saving the loaded card again changes nothing (YAML order and text kept).
    text = (carded / "README.md").read_text(encoding="utf-8")
    assert str(DatasetCard(text)) == text


def test_card_text_shows_statistics_loading_and_citation(carded):
    text = (carded / "README.md").read_text(encoding="utf-8")
    ratios = datasets.load_dataset(str(carded), "backgrounds", split="train")["fg_ratio"]
    kept = sum(ratio < 0.5 for ratio in ratios)
    for needle in (
        "arXiv:2503.09399", "from recombinet_hf import load_dataset", "datasets.load_dataset(",
        'revision="0.0.1"', "<background>-<size>-pt<threshold>", f"]({PREVIEW_IMAGE})", f"]({FG_RATIO_IMAGE})",
        "| train | 12 | 2 | 1 |", "| validation | 12 | 0 | 0 |",  # outcomes: kept, no_detection, error
        "| `foregrounds` | 12 | 12 |", "| train | 3 | 4 | 4 | 4.0 | 4 | 0 |",  # counts, per-class spread
        f"| 0.5 | {kept} / 12 ({100 * kept / 12:.1f} %) | 3 |", "| 1.0 | 12 / 12 (100.0 %) | 0 |",  # backgrounds per pt
        "ImageNet terms of access", "`same-range-pt0.8`", '| `models.segmenter` | `{"model": "u2netp", "name": "salient"}` |',
        '| `builder.settings` | `{"inpaint": "telea", "segment": "salient"}` |', "| train | `decode_error` | 1 |",
    ):
        assert needle in text, needle


def test_card_images_are_pngs(carded):
    preview = Image.open(carded / PREVIEW_IMAGE)
    histogram_image = Image.open(carded / FG_RATIO_IMAGE)
    assert preview.format == histogram_image.format == "PNG"
    assert preview.size[0] > 600 and preview.size[1] > 400
    assert np.asarray(preview.convert("L")).std() > 10  # not blank


def test_every_config_loads_with_plain_datasets(carded):
    card = DatasetCard.load(carded / "README.md")
    for entry in card.data.to_dict()["configs"]:
        name = entry["config_name"]
        loaded = datasets.load_dataset(str(carded), name)
        source = name if name in DATA_CONFIGS else "foregrounds"
        assert set(loaded) == {"train", "validation"}
        assert loaded["train"].features == release_features(source, CLASS_NAMES), name
        assert loaded["train"].num_rows == 12


def test_render_is_idempotent_and_keeps_configs(carded, tmp_path):
    folder = Path(shutil.copytree(carded, tmp_path / "copy"))
    render_card(folder, repo_id="org/name", images=False)
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert 'load_dataset("org/name", "same-range-pt0.8"' in text
    assert DatasetCard.load(folder / "README.md").data.to_dict() == DatasetCard.load(carded / "README.md").data.to_dict()


def test_recombination_configs_from_recombinet_json(tmp_path):
    folder = make_release(tmp_path / "r", info={"recombination_configs": ["all-range-pt0.8-rot20", "same-range-pt0.8"]})
    (folder / "README.md").unlink()
    render_card(folder, images=False)
    names = [entry["config_name"] for entry in DatasetCard.load(folder / "README.md").data.to_dict()["configs"]]
    assert names == [*DATA_CONFIGS, "all-range-pt0.8-rot20", "same-range-pt0.8"]
    assert DatasetCard.load(folder / "README.md").data.license == "unknown"


# -- offline YAML checks ----------------------------------------------------------------------


def _metadata(carded) -> dict:
    return DatasetCard.load(carded / "README.md").data.to_dict()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"license": "gpl-99"}, "`license`: 'gpl-99'"),
        ({"license_link": None}, "`license: other` needs `license_link`"),
        ({"license_name": "ImageNet Terms"}, "`license_name`"),
        ({"size_categories": ["huge"]}, "`size_categories`: 'huge'"),
        ({"task_categories": ["image-recombination"]}, "`task_categories`"),
        ({"tags": ["Bad Tag"]}, "`tags`"),
        ({"pretty_name": None}, "`pretty_name` is required"),
        ({"extra_gated_fields": {"Name": "essay"}}, "`extra_gated_fields`"),
        ({"source_datasets": ["copied"]}, "`source_datasets`"),
    ],
)
def test_schema_rejects_bad_values(carded, change, message):
    metadata = {**_metadata(carded), **change}
    problems = validate_card_metadata(metadata, folder=carded)
    assert any(message in problem for problem in problems), problems


def test_schema_checks_configs(carded):
    metadata = _metadata(carded)
    configs = [dict(entry) for entry in metadata["configs"]]
    configs[3] = {**configs[3], "config_name": "same-range-pt0.80"}
    configs[4] = {**configs[4], "config_name": "sometimes-range-pt0.8"}
    configs[1] = {**configs[1], "data_files": [{"split": "train", "path": "data/nowhere/*.parquet"}]}
    problems = validate_card_metadata({**metadata, "configs": configs}, folder=carded)
    text = "\n".join(problems)
    assert "'same-range-pt0.80' is not canonical; write 'same-range-pt0.8'" in text
    assert "'sometimes-range-pt0.8' is neither a data config" in text
    assert "data/nowhere/*.parquet" in text
    assert "no features for config(s)" in text
    assert not validate_card_metadata(metadata, folder=carded)


def test_check_card_raises_with_every_problem(carded, tmp_path):
    card = DatasetCard.load(carded / "README.md")
    card.data.license = "not-a-license"
    card.data.size_categories = ["tiny"]
    card.save(tmp_path / "README.md")
    with pytest.raises(CardCheckError) as error:
        check_card(tmp_path / "README.md")
    assert len(error.value.problems) >= 3  # license, size, and data_files missing next to this README
    assert "not-a-license" in str(error.value)


def test_card_schema_has_provenance():
    schema = load_card_schema()
    assert "huggingface.co/docs/hub/repositories-licenses" in schema["_provenance"]
    assert {"other", "unknown", "cc-by-4.0"} <= set(schema["license"])
    assert "image-classification" in schema["task_categories"]


# -- release checks ---------------------------------------------------------------------------


def test_check_release_passes_and_reports_every_shard(carded):
    reports = check_release(carded)
    assert len(reports) == 12
    assert all(0 < report.max_row_group_bytes < checks_module.MAX_ROW_GROUP_BYTES for report in reports)


def test_check_release_names_oversized_row_groups(carded):
    with pytest.raises(ReleaseCheckError) as error:
        check_release(carded, max_row_group_bytes_limit=1000)
    assert len(error.value.problems) == 12
    assert "data/backgrounds/train-00000-of-00002.parquet: a row group holds" in str(error.value)


def test_image_row_groups_follow_the_writer_budget(tmp_path):
    import pyarrow.parquet as pq

    image, mask = make_photo(96, 72, 0, 0.2, seed=1)
    rows = [rows_for(f"k{i}", i, 0, image, mask)["backgrounds"] for i in range(6)]
    one = write_shard(tmp_path / "one.parquet", "backgrounds", rows, CLASS_NAMES)
    small = write_shard(tmp_path / "small.parquet", "backgrounds", rows, CLASS_NAMES, row_group_bytes=2000)
    assert pq.ParquetFile(one).metadata.num_row_groups == 1
    assert pq.ParquetFile(small).metadata.num_row_groups > 1
    assert max_row_group_bytes(small) < max_row_group_bytes(one)


def test_check_release_catches_changed_missing_and_unlisted_shards(tmp_path):
    folder = make_release(tmp_path / "r", num_shards=2)
    info = json.loads((folder / "recombinet.json").read_text())
    changed = shard_path(folder, "masks", "train", 0, 2)
    image, mask = make_photo(96, 72, 0, 0.2, seed=1)
    write_shard(changed, "masks", [rows_for("x", 0, 0, image, mask)["masks"]], CLASS_NAMES)
    (folder / "data/foregrounds/validation-00001-of-00002.parquet").unlink()
    shutil.copy(changed, folder / "data" / "masks" / "extra-00000-of-00001.parquet")
    with pytest.raises(ReleaseCheckError) as error:
        check_release(folder)
    text = str(error.value)
    assert "data/masks/train-00000-of-00002.parquet: sha256" in text
    assert "data/foregrounds/validation-00001-of-00002.parquet: listed in recombinet.json but missing" in text
    assert "data/masks/extra-00000-of-00001.parquet: not listed" in text
    assert len(info["shards"]) == 12


# -- preview and CLI --------------------------------------------------------------------------


def test_write_preview(carded, tmp_path):
    out = write_preview(carded, "all-range-pt1.0-rot30", out=tmp_path / "p.png", split="validation")
    assert out == tmp_path / "p.png" and Image.open(out).format == "PNG"
    with pytest.raises(ValueError, match="Unknown token"):
        write_preview(carded, "all-range-pt1.0-spin30", out=tmp_path / "q.png")


def test_cli_card_preview_check(carded, tmp_path, capsys):
    folder = Path(shutil.copytree(carded, tmp_path / "copy"))
    assert main(["card", str(folder), "--no-images", "--repo-id", "org/x"]) == 0
    assert main(["preview", str(folder), "same-range-pt1.0", "--split", "validation"]) == 0
    assert (folder / "images" / "preview-same-range-pt1.0.png").is_file()
    assert main(["check", str(folder)]) == 0
    assert "12 shard(s) OK" in capsys.readouterr().out
    (folder / "data/masks/train-00000-of-00002.parquet").write_bytes(b"not parquet")
    assert main(["check", str(folder)]) == 2
    error = capsys.readouterr().err
    assert "recombinet check: error: Release" in error
    assert "data/masks/train-00000-of-00002.parquet: not a readable Parquet file" in error


def test_cli_subcommands_plug_into_another_parser():
    parser = argparse.ArgumentParser(prog="recombinet")
    add_subcommands(parser.add_subparsers(dest="subcommand"))
    args = parser.parse_args(["push", "out/release", "--repo-id", "org/name", "--private", "--revision-tag", "v2"])
    assert (args.repo_id, args.private, args.revision_tag, args.command) == ("org/name", True, "v2", "push")
    assert callable(args.func)
    with pytest.raises(SystemExit):  # the token never comes from the command line
        build_parser().parse_args(["push", "out/release", "--repo-id", "org/name", "--token", "hf_x"])
