"""The builder's pure parts: versions and scores, shard layout, ranks, outcomes, rows,
label files, manifests, option parsing."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from recombinet_builder.backends import Candidate
from recombinet_builder.cli import parse_options
from recombinet_builder.classifiers import load_classifier
from recombinet_builder.decode import load_rgb
from recombinet_builder.finalize import recombination_configs
from recombinet_builder.manifest import manifest_differences
from recombinet_builder.outcomes import Outcome, SourceImageError, count_outcomes
from recombinet_builder.rows import make_rows, mask_box
from recombinet_builder.shards import num_shards_for, plan_shards, plan_split, resolve_rank, shards_for_rank
from recombinet_builder.sources import parse_ground_truth, parse_loc_val_solution, read_devkit_meta
from recombinet_builder.versions import (
    fallback_score,
    grey_composite,
    make_versions,
    mask_iou,
    score_versions,
    select_version,
    version_score,
)
from recombinet_hf.features import DEFAULT_RECOMBINATION_CONFIGS

from builder_helpers import png_header_only


def _box_mask(x0, y0, x1, y1, shape=(20, 30)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ------------------------------------------------------------------ versions


def test_same_prompt_candidates_are_ored_and_ordered_by_prompt():
    prompts = ["a tench, a type of cyprinid.", "a cyprinid."]
    candidates = [
        Candidate(_box_mask(0, 0, 5, 5), 0.9, "a cyprinid."),
        Candidate(_box_mask(10, 10, 15, 15), 0.5, "a tench, a type of cyprinid."),
        Candidate(_box_mask(20, 0, 25, 5), 0.4, "a tench, a type of cyprinid."),
    ]
    versions = make_versions(candidates, prompts)
    assert len(versions) == 2
    assert versions[0].prompts == ("a tench, a type of cyprinid.",)  # the class prompt comes first
    assert versions[0].mask.sum() == 50 and versions[0].segmenter_score == 0.5  # OR of two boxes, best score
    assert versions[1].prompts == ("a cyprinid.",)


def test_versions_with_iou_over_threshold_merge_and_are_capped():
    base = _box_mask(0, 0, 10, 10)
    nearly = _box_mask(0, 0, 10, 10)
    nearly[9, 9] = False  # IoU 0.99
    other = [_box_mask(12 + i, 0, 14 + i, 10) for i in range(0, 12, 3)]
    candidates = [Candidate(base, 0.6, "a"), Candidate(nearly, 0.8, "b")] + [
        Candidate(m, 0.3, f"p{i}") for i, m in enumerate(other)
    ]
    versions = make_versions(candidates, ["a", "b", "p0", "p1", "p2", "p3"], max_versions=3)
    assert len(versions) == 3
    assert versions[0].prompts == ("a", "b") and versions[0].segmenter_score == 0.8
    assert mask_iou(base, nearly) > 0.9
    assert make_versions(candidates[:2], ["a", "b"], iou_threshold=1.0)[1].prompts == ("b",)


def test_empty_candidates_give_no_versions():
    assert make_versions([]) == []
    assert make_versions([Candidate(np.zeros((4, 4), bool), 0.9)]) == []
    with pytest.raises(ValueError, match="max_versions"):
        make_versions([], max_versions=0)


def test_published_score_terms():
    score = version_score(0.8, 0.25, 0.1, 0, 3)
    assert score == pytest.approx(math.log(0.8) + math.log(0.75))
    assert version_score(0.8, 0.25, 0.3, 0, 3) == pytest.approx(score + 2 * math.log(0.8))
    assert version_score(0.8, 0.25, 0.1, 2, 3) == pytest.approx(score + 0.1 * math.log(1 - 2 / 4))
    assert math.isfinite(version_score(0.0, 1.0, 1.0, 0, 1))  # clipped, never -inf
    assert fallback_score(0.9, 0.1, 1, 2) == pytest.approx(math.log(0.9) + 0.1 * math.log(1 - 1 / 3))
    assert select_version([-3.0, -1.0, -1.0]) == 1


def test_scores_with_a_classifier_use_grey_composite_and_inpainted_background():
    image = Image.fromarray(np.full((20, 30, 3), 200, np.uint8))
    small, big = _box_mask(0, 0, 8, 8), _box_mask(0, 0, 30, 20)
    versions = make_versions([Candidate(small, 0.9, ""), Candidate(big, 0.2, "x")], ["", "x"])
    seen = []

    def classifier(img):
        seen.append(np.asarray(img).copy())
        p = np.zeros(4)
        p[1] = 0.9 if (np.asarray(img) == 128).any() else 0.1  # grey composite -> confident
        return p

    inpainted = []
    scores, backgrounds = score_versions(
        versions, image=image, label=1, num_classes=4, classifier=classifier,
        inpaint=lambda v: inpainted.append(v) or Image.new("RGB", (30, 20), (5, 5, 5)),
    )
    assert len(scores) == 2 and set(backgrounds) == {0, 1} and len(inpainted) == 2
    assert (seen[0][~small] == 128).all() and (seen[0][small] == 200).all()
    assert scores[0] == pytest.approx(version_score(0.9, 0.1, small.mean(), 0, 2))
    no_classifier, none = score_versions(versions, image=image, label=1, num_classes=4, classifier=None, inpaint=None)
    assert none == {} and no_classifier[0] == pytest.approx(fallback_score(0.9, small.mean(), 0, 2))
    with pytest.raises(ValueError, match="4 classes"):
        score_versions(versions, image=image, label=1, num_classes=4, classifier=lambda img: np.ones(3) / 3, inpaint=lambda v: image)
    assert np.asarray(grey_composite(image, small))[10, 20].tolist() == [128, 128, 128]


def test_classifier_specs(tmp_path):
    assert load_classifier(None, class_names=["a"]) is None
    assert load_classifier("none", class_names=["a"]) is None
    with pytest.raises(ValueError, match="MODULE:FACTORY"):
        load_classifier("nonsense", class_names=["a"])
    with pytest.raises(ValueError, match="cannot import"):
        load_classifier("no_such_module_xyz:make", class_names=["a"])
    classifier = load_classifier("builder_helpers:uniform_classifier", class_names=["a", "b"])
    assert classifier(Image.new("RGB", (4, 4))).tolist() == [0.5, 0.5]


# ------------------------------------------------------------------ shards and ranks


def test_shards_are_contiguous_whole_batches_covering_every_position():
    for n, shards, batch in [(10, 3, 1), (10, 3, 4), (1000, 7, 8), (5, 5, 1), (1, 1, 8)]:
        specs = plan_split("train", n, shards, batch)
        assert [s.index for s in specs] == list(range(shards))
        assert specs[0].start == 0 and specs[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(specs, specs[1:]))
        assert all(s.start % batch == 0 for s in specs)
    assert plan_split("train", 10, 3, 4)[1].name == "train-00001-of-00003"
    with pytest.raises(ValueError, match="num_shards"):
        plan_split("train", 10, 4, 4)  # only 3 batches


def test_num_shards_defaults_and_caps():
    assert num_shards_for(2500, batch_size=8) == 3
    assert num_shards_for(2500, batch_size=8, shard_size=100) == 25
    assert num_shards_for(10, batch_size=4, num_shards=100) == 3  # at most one shard per batch
    assert num_shards_for(0, batch_size=4) == 1
    with pytest.raises(ValueError, match="--batch-size"):
        num_shards_for(10, batch_size=0)


def test_round_robin_over_all_splits():
    shards = plan_shards({"validation": (4, 2), "train": (6, 3)}, 1)
    assert [s.name for s in shards][:2] == ["train-00000-of-00003", "train-00001-of-00003"]
    mine = shards_for_rank(shards, 1, 2)
    assert [s.name for s in mine] == ["train-00001-of-00003", "validation-00000-of-00002"]
    assert sorted(s.name for r in range(2) for s in shards_for_rank(shards, r, 2)) == sorted(s.name for s in shards)


def test_rank_from_options_torchrun_and_slurm():
    assert resolve_rank(env={}).world_size == 1
    options = resolve_rank(2, 4, env={"RANK": "0", "WORLD_SIZE": "8"})  # options win over the environment
    assert (options.rank, options.world_size, options.launcher) == (2, 4, "cli")
    info = resolve_rank(env={"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.launcher, info.local_rank) == (3, 4, "torchrun", 1)
    slurm = resolve_rank(env={"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "10"})
    assert (slurm.rank, slurm.world_size, slurm.launcher) == (7, 10, "slurm-array")
    one_based = resolve_rank(env={"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8"})
    assert (one_based.rank, one_based.world_size) == (4, 8)
    stepped = resolve_rank(env={"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MAX": "6", "SLURM_ARRAY_TASK_STEP": "2"})
    assert (stepped.rank, stepped.world_size) == (2, 4)
    with pytest.raises(ValueError, match="--num-ranks"):
        resolve_rank(1, None, env={})
    with pytest.raises(ValueError, match="--shard-index"):
        resolve_rank(4, 4, env={})
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_MAX"):
        resolve_rank(env={"SLURM_ARRAY_TASK_ID": "1"})


# ------------------------------------------------------------------ outcomes, decoding, rows


def test_outcomes_and_counts():
    outcomes = [
        Outcome(0, "a", 1, "kept", score=-1.0, version=0, num_versions=1),
        Outcome(1, "b", 1, "no_detection"),
        Outcome(2, "c", None, "error", "no_label", "no label"),
    ]
    assert outcomes[1].to_json() == {"idx": 1, "key": "b", "label": 1, "status": "no_detection"}
    assert Outcome.from_json(outcomes[0].to_json()) == outcomes[0]
    assert count_outcomes(outcomes) == {"kept": 1, "no_detection": 1, "error": 1, "errors_by_reason": {"no_label": 1}}
    with pytest.raises(ValueError, match="status"):
        Outcome(0, "a", 1, "lost")
    with pytest.raises(ValueError, match="reason"):
        Outcome(0, "a", 1, "error")
    with pytest.raises(ValueError, match="allowed"):
        SourceImageError("oops", "x")


def test_decode_reasons_and_conversions():
    with pytest.raises(SourceImageError) as empty:
        load_rgb(b"", key="k")
    assert empty.value.reason == "empty_file"
    with pytest.raises(SourceImageError) as large:
        load_rgb(png_header_only(10000, 10000), key="big")
    assert large.value.reason == "too_large" and "10000x10000" in str(large.value) and "not decoded" in str(large.value)
    with pytest.raises(SourceImageError) as corrupt:
        load_rgb(b"not an image at all", key="junk")
    assert corrupt.value.reason == "decode_error" and "junk" in str(corrupt.value)
    buffer = io.BytesIO()
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(buffer, format="JPEG")
    rgb = load_rgb(buffer.getvalue(), key="cmyk")
    assert rgb.mode == "RGB" and rgb.size == (6, 4)
    buffer = io.BytesIO()
    Image.new("L", (5, 3), 77).save(buffer, format="PNG")
    assert load_rgb(buffer.getvalue(), key="gray").getpixel((0, 0)) == (77, 77, 77)


def test_rows_crop_alpha_ratio_and_codecs():
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    mask = _box_mask(4, 2, 10, 12)
    mask[2, 4] = False
    rows = make_rows(idx=3, key="k", label=5, image=image, mask=mask, background=image, score=-0.5)
    fg = rows["foregrounds"]
    assert fg["box"] == mask_box(mask) == [4, 2, 10, 12] and fg["source_size"] == [30, 20]
    assert fg["fg_ratio"] == pytest.approx(mask.sum() / 600)
    assert fg["alpha_coverage"] == pytest.approx(59 / 60)
    crop = np.asarray(Image.open(io.BytesIO(fg["image"])))
    assert crop.shape == (10, 6, 4)
    np.testing.assert_array_equal(crop[..., 3], mask[2:12, 4:10] * 255)  # exact alpha
    np.testing.assert_array_equal(crop[..., :3], pixels[2:12, 4:10])  # lossless
    decoded_mask = np.asarray(Image.open(io.BytesIO(rows["masks"]["mask"])))
    np.testing.assert_array_equal(decoded_mask, mask * 255)
    assert Image.open(io.BytesIO(rows["backgrounds"]["image"])).format == "JPEG"
    with pytest.raises(ValueError, match="mask shape"):
        make_rows(idx=0, key="k", label=0, image=image, mask=mask[:5], background=image, score=0.0)


# ------------------------------------------------------------------ label files, manifests, options


def test_kaggle_loc_val_solution():
    text = "ImageId,PredictionString\nILSVRC2012_val_00008726,n02119789 255 142 454 329 n02119789 44 21 322 295\n"
    assert parse_loc_val_solution(text) == {"ILSVRC2012_val_00008726": "n02119789"}
    with pytest.raises(ValueError, match="ImageId,PredictionString"):
        parse_loc_val_solution("id,label\n")


def test_ilsvrc_ground_truth_with_devkit_meta(tmp_path):
    from scipy.io import savemat

    synsets = np.array(
        [(1, "n02119789", 0), (2, "n02100735", 0), (1001, "n00001740", 5)],
        dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")],
    )
    savemat(tmp_path / "meta.mat", {"synsets": synsets})
    mapping = read_devkit_meta(tmp_path / "meta.mat")
    assert mapping == {1: "n02119789", 2: "n02100735"}
    assert parse_ground_truth("2\n1\n", mapping) == {"ILSVRC2012_val_00000001": "n02100735", "ILSVRC2012_val_00000002": "n02119789"}
    with pytest.raises(ValueError, match="line 1"):
        parse_ground_truth("7\n", mapping)


def test_manifest_differences_name_the_fields():
    old = {"settings": {"segment": "salient", "batch_size": 8}, "splits": {"train": {"num_images": 3}}}
    new = {"settings": {"segment": "grounded-sam", "batch_size": 8}, "splits": {"train": {"num_images": 3}}}
    assert manifest_differences(old, new) == ["settings.segment: 'salient' -> 'grounded-sam'"]
    assert manifest_differences(old, old) == []


def test_option_parsing_and_recombination_configs():
    assert parse_options(["box_threshold=0.3", "device=cpu", "flag=true", "sizes=[1,2]"], "--segment-option") == {
        "box_threshold": 0.3, "device": "cpu", "flag": True, "sizes": [1, 2],
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["novalue"], "--segment-option")
    assert recombination_configs() == list(DEFAULT_RECOMBINATION_CONFIGS)
    assert recombination_configs(["all-range-pt1.0-rot30", "same-range-pt0.8"])[-1] == "all-range-pt1.0-rot30"
    with pytest.raises(ValueError, match="--recombination-config"):
        recombination_configs(["sideways-range-pt0.8"])
