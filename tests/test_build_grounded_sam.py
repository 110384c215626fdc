"""The grounded-sam path end to end on tiny random-weight models (GroundingDINO + SAM from
test_grounded_sam.py), with a tiny `transformers` classifier scoring the versions; and an
`hf:` source with its own ClassLabel space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from builder_helpers import make_imagenet_folder, read_release  # noqa: E402
from recombinet_builder.cli import main  # noqa: E402
from synthetic import CLASS_NAMES, make_photo  # noqa: E402
from test_grounded_sam import tiny_models  # noqa: E402,F401  (session fixture: tiny model folders)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> str:
    """A random-weight ViT over the 1000 ImageNet classes, saved with its PIL processor."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    folder = tmp_path_factory.mktemp("tiny_vit")
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, num_labels=1000,
    )
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def test_grounded_sam_build_with_classifier(tiny_models, tiny_classifier, tmp_path):  # noqa: F811
    source = make_imagenet_folder(tmp_path / "imagenet", train_per_class=2, val_per_class=0, size=(80, 60))
    out = tmp_path / "release"
    args = [
        "build", "--source", str(source), "--out", str(out), "--segment", "grounded-sam",
        "--segment-option", f"detector={tiny_models['detector']}", "--segment-option", f"sam={tiny_models['sam']}",
        "--segment-option", "box_threshold=0.0", "--classifier", f"hf:{tiny_classifier}",
        "--batch-size", "2", "--card", "minimal", "--no-progress", "--recombination-config", "all-range-pt1.0-rot30",
    ]
    assert main(args) == 0
    info = json.loads((out / "recombinet.json").read_text())
    assert info["models"]["segment"]["backend"] == "grounded-sam"
    assert info["models"]["segment"]["detector"] == tiny_models["detector"]
    assert info["models"]["classifier"]["spec"] == f"hf:{tiny_classifier}"
    assert info["models"]["classifier"]["num_labels"] == 1000
    assert "all-range-pt1.0-rot30" in info["recombination_configs"]
    assert info["outcomes"]["train"]["kept"] + info["outcomes"]["train"]["no_detection"] == 4
    assert info["outcomes"]["train"]["kept"] >= 1  # threshold 0: the random detector finds boxes
    lines = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    for line in lines:
        if line["status"] == "kept":
            assert 0 <= line["version"] < line["num_versions"] <= 3
    release = read_release(out)
    for key, fg in release[("foregrounds", "train")].items():
        mask = release[("masks", "train")][key]["mask"]
        assert mask.shape == (60, 80) and mask.any()
        assert np.isfinite(fg["score"]) and fg["label"] in (0, 1)
    assert "config_name: all-range-pt1.0-rot30" in (out / "README.md").read_text()


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    import datasets

    def split(n: int, seed: int) -> "datasets.Dataset":
        images = [make_photo(48, 36, i % 3, 0.2, seed=seed + i)[0] for i in range(n)]
        return datasets.Dataset.from_dict(
            {"picture": images, "category": [i % 3 for i in range(n)], "name": [f"img{seed + i}" for i in range(n)]},
            features=datasets.Features(
                {"picture": datasets.Image(), "category": datasets.ClassLabel(names=CLASS_NAMES), "name": datasets.Value("string")}
            ),
        )

    folder = tmp_path_factory.mktemp("hf_source")
    datasets.DatasetDict({"train": split(3, 0), "validation": split(2, 100), "test": split(2, 200)}).save_to_disk(str(folder))
    return folder


def test_hf_source_uses_its_classlabel(hf_folder, tmp_path):
    out = tmp_path / "release"
    assert main(["build", "--source", f"hf:{hf_folder}", "--out", str(out), "--card", "minimal", "--no-progress"]) == 0
    info = json.loads((out / "recombinet.json").read_text())
    assert info["class_names"] == CLASS_NAMES and info["label_space"] == "source"
    assert info["source"]["image_column"] == "picture" and info["source"]["label_column"] == "category"
    assert info["source"]["ignored_splits"] == ["test"]
    assert sorted(info["splits"]) == ["train", "validation"]
    lines = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    assert [line["key"] for line in lines] == ["00000000", "00000001", "00000002", "00000000", "00000001"]
    assert [line["label"] for line in lines] == [0, 1, 2, 0, 1]
    import datasets

    foregrounds = datasets.load_dataset(str(out), "foregrounds", split="train")
    assert foregrounds.features["label"].names == CLASS_NAMES


def test_hf_source_key_column_and_errors(hf_folder, tmp_path):
    out = tmp_path / "release"
    args = ["build", "--source", f"hf:{hf_folder}", "--out", str(out), "--card", "none", "--no-progress", "--splits", "validation"]
    assert main([*args, "--key-column", "name", "--image-column", "picture"]) == 0
    lines = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    assert [line["key"] for line in lines] == ["img100", "img101"]
    with pytest.raises(ValueError, match="--label-column"):
        main(["-v", *args, "--label-column", "name"])
