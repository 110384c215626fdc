"""`recombinet build --source sample`: the 20 real foolbox photos, salient + telea on CPU,
then the built release loads with `recombinet_hf.load_dataset` and `datasets.load_dataset`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

import recombinet_hf
from builder_helpers import read_release
from recombinet_builder.class_table import imagenet_class_names
from recombinet_builder.cli import main
from recombinet_builder.sample import sample_images


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("sample") / "release"
    started = time.perf_counter()
    assert main(["build", "--source", "sample", "--out", str(out), "--card", "minimal", "--no-progress"]) == 0
    elapsed = time.perf_counter() - started
    print(f"sample build: 20 images in {elapsed:.1f} s ({20 / elapsed:.2f} img/s)")
    return out, elapsed


def test_every_photo_is_kept_with_sane_rows(built):
    out, _ = built
    samples = sample_images()
    release = read_release(out)
    assert sorted(release) == [("backgrounds", "train"), ("foregrounds", "train"), ("masks", "train")]
    foregrounds, backgrounds, masks = (release[(c, "train")] for c in ("foregrounds", "backgrounds", "masks"))
    assert sorted(foregrounds) == sorted(backgrounds) == sorted(masks) == [s.key for s in samples]
    for idx, sample in enumerate(samples):
        fg, bg, mask = foregrounds[sample.key], backgrounds[sample.key], masks[sample.key]
        assert fg["idx"] == bg["idx"] == mask["idx"] == idx  # position in the sorted source
        assert fg["label"] == bg["label"] == mask["label"] == sample.label
        with Image.open(sample.path) as photo:
            width, height = photo.size
        assert fg["source_size"] == bg["source_size"] == [width, height]
        assert mask["mask"].shape == (height, width) and set(np.unique(mask["mask"])) <= {0, 255}
        binary = mask["mask"] > 0
        x0, y0, x1, y1 = fg["box"]
        assert fg["box"] == mask["box"] and 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert binary[:, :x0].sum() == binary[:, x1:].sum() == binary[:y0].sum() == binary[y1:].sum() == 0
        assert 0.01 < fg["fg_ratio"] < 0.95 and fg["fg_ratio"] == pytest.approx(binary.mean(), abs=1e-6)
        assert bg["fg_ratio"] == fg["fg_ratio"]
        assert fg["image"].shape == (y1 - y0, x1 - x0, 4)
        np.testing.assert_array_equal(fg["image"][..., 3], mask["mask"][y0:y1, x0:x1])  # alpha = mask
        assert fg["alpha_coverage"] == pytest.approx(binary[y0:y1, x0:x1].mean(), abs=1e-6)
        assert np.isfinite(fg["score"]) and fg["score"] <= 0
        assert bg["image"].shape == (height, width, 3)


def test_release_info_outcomes_and_card(built):
    out, _ = built
    info = json.loads((out / "recombinet.json").read_text())
    assert info["format_version"] == 1 and info["release_version"] == "1.0.0"
    assert info["num_classes"] == 1000 and info["class_names"] == imagenet_class_names()
    assert info["outcomes"] == {"train": {"kept": 20, "no_detection": 0, "error": 0}}
    assert info["counts"]["train"] == {"foregrounds": 20, "backgrounds": 20, "masks": 20}
    assert info["models"]["segment"]["model"] == "u2netp.onnx" and info["models"]["inpaint"]["backend"] == "telea"
    assert info["models"]["classifier"] is None
    assert info["builder"]["settings"]["segment"] == "salient" and info["source"]["kind"] == "sample"
    assert info["license"] == "other" and "image-net.org" in info["license_link"]
    assert len(info["shards"]) == 3
    lines = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    assert [line["idx"] for line in lines] == list(range(20)) and {line["status"] for line in lines} == {"kept"}
    readme = (out / "README.md").read_text()
    assert "config_name: same-range-pt0.8" in readme and "license: other" in readme


def test_finalize_is_idempotent(built):
    out, _ = built
    before = {name: (out / name).read_bytes() for name in ("recombinet.json", "outcomes.jsonl", "README.md")}
    assert main(["finalize", str(out), "--card", "minimal"]) == 0
    assert {name: (out / name).read_bytes() for name in before} == before


def test_rerun_of_a_finished_build_does_nothing(built):
    out, _ = built
    stamp = (out / "data" / "foregrounds" / "train-00000-of-00001.parquet").stat().st_mtime_ns
    assert main(["build", "--source", "sample", "--out", str(out), "--card", "none", "--no-progress"]) == 0
    assert (out / "data" / "foregrounds" / "train-00000-of-00001.parquet").stat().st_mtime_ns == stamp


def test_recombinet_hf_load_dataset(built):
    out, _ = built
    dataset = recombinet_hf.load_dataset(out, "same-range-pt0.8", split="train")
    sample = dataset[0]
    assert isinstance(sample["image"], Image.Image) and sample["image"].mode == "RGB"
    assert sample["label"] == sample_images()[0].label and sample["fg_key"] == "imagenet_00_243"
    assert dataset.features["label"].names == imagenet_class_names()


def test_datasets_load_dataset_foregrounds(built):
    out, _ = built
    foregrounds = datasets.load_dataset(str(out), "foregrounds")
    assert list(foregrounds) == ["train"] and foregrounds["train"].num_rows == 20
    row = foregrounds["train"][0]
    assert row["image"].mode == "RGBA" and row["key"] == "imagenet_00_243"
    assert foregrounds["train"].features["label"].num_classes == 1000


def test_original_images_from_the_sample_photos(built):
    from recombinet_hf.training import load_original_images

    out, _ = built
    originals = load_original_images(out, "same-range-pt0.8", "train", source="sample")
    reconstructed = load_original_images(out, "same-range-pt0.8", "train")
    photo = Image.open(sample_images()[0].path).convert("RGB")
    assert np.array_equal(np.asarray(originals[0]["image"]), np.asarray(photo))
    # the reconstruction puts the object back on its inpainted background: close, not equal
    rebuilt = np.asarray(reconstructed[0]["image"], dtype=float)
    assert rebuilt.shape == np.asarray(photo).shape
    assert 0 < np.abs(rebuilt - np.asarray(photo, dtype=float)).mean() < 20
