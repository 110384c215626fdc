"""Broken and unusual source files end in the outcome list (never crash the build, never
leave rows): truncated, CMYK, grayscale, zero-byte, header-declared > 89 Mpx, no label."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder_helpers import WNIDS, jpeg_bytes, png_header_only, read_release
from recombinet_builder.cli import main
from synthetic import make_photo


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_source")
    tench, goldfish = root / "train" / WNIDS[0], root / "train" / WNIDS[1]
    tench.mkdir(parents=True)
    goldfish.mkdir(parents=True)
    photo, _ = make_photo(64, 48, 0, 0.15, seed=1)
    photo.save(tench / "good.JPEG", quality=92)
    full = jpeg_bytes(make_photo(64, 48, 1, 0.15, seed=2)[0], quality=92)
    (tench / "truncated.JPEG").write_bytes(full[: len(full) // 2])
    (tench / "empty.JPEG").write_bytes(b"")
    (goldfish / "huge.png").write_bytes(png_header_only(10000, 10000))
    (goldfish / "cmyk.jpg").write_bytes(jpeg_bytes(make_photo(64, 48, 1, 0.2, seed=3)[0].convert("CMYK")))
    make_photo(64, 48, 2, 0.2, seed=4)[0].convert("L").save(goldfish / "gray.png")
    Image.new("RGB", (40, 30), (0, 0, 0)).save(goldfish / "black.png")  # nothing salient
    # a flat val folder with Kaggle's label file, one image without a label
    val = root / "val"
    val.mkdir()
    photo.save(val / "ILSVRC2012_val_00000001.JPEG")
    photo.save(val / "ILSVRC2012_val_00000002.JPEG")
    (root / "LOC_val_solution.csv").write_text(
        f"ImageId,PredictionString\nILSVRC2012_val_00000001,{WNIDS[1]} 1 2 30 40\n"
    )
    out = tmp_path_factory.mktemp("bad_release") / "release"
    assert main(["build", "--source", str(root), "--out", str(out), "--card", "minimal", "--no-progress"]) == 0
    return out


def _outcomes(out: Path) -> dict[str, dict]:
    return {line["key"]: line for line in map(json.loads, (out / "outcomes.jsonl").read_text().splitlines())}


def test_every_file_ends_in_exactly_one_place(built):
    outcomes = _outcomes(built)
    assert sorted(outcomes) == sorted(
        ["good", "truncated", "empty", "huge", "cmyk", "gray", "black", "ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
    )
    assert outcomes["empty"]["status"] == "error" and outcomes["empty"]["reason"] == "empty_file"
    assert outcomes["truncated"]["status"] == "error" and outcomes["truncated"]["reason"] == "decode_error"
    assert outcomes["huge"]["status"] == "error" and outcomes["huge"]["reason"] == "too_large"
    assert "10000x10000" in outcomes["huge"]["message"] and "not decoded" in outcomes["huge"]["message"]
    assert outcomes["good"]["status"] == "kept"
    assert outcomes["black"]["status"] == "no_detection"
    for convertible in ("cmyk", "gray"):  # converted to RGB: kept or nothing found, never an error
        assert outcomes[convertible]["status"] in ("kept", "no_detection"), outcomes[convertible]
    assert outcomes["ILSVRC2012_val_00000001"]["status"] == "kept"
    assert outcomes["ILSVRC2012_val_00000002"]["reason"] == "no_label"


def test_rows_only_for_kept_images(built):
    outcomes = _outcomes(built)
    kept = {key for key, line in outcomes.items() if line["status"] == "kept"}
    release = read_release(built)
    for (config, split), rows in release.items():
        for key, row in rows.items():
            assert key in kept, (config, key)
            assert row["idx"] == outcomes[key]["idx"]
    assert {key for (config, _), rows in release.items() if config == "foregrounds" for key in rows} == kept
    assert {key for (config, _), rows in release.items() if config == "masks" for key in rows} == kept


def test_idx_is_position_in_sorted_split_and_labels_are_imagenet(built):
    outcomes = _outcomes(built)
    train = sorted(key for key, line in outcomes.items() if not key.startswith("ILSVRC"))
    assert [outcomes[key]["idx"] for key in train] == list(range(len(train)))
    assert outcomes["good"]["label"] == 0 and outcomes["huge"]["label"] == 1
    assert outcomes["ILSVRC2012_val_00000001"]["label"] == 1 and outcomes["ILSVRC2012_val_00000001"]["idx"] == 0
    info = json.loads((built / "recombinet.json").read_text())
    assert info["error_reasons"]["train"] == {"decode_error": 1, "empty_file": 1, "too_large": 1}
    assert info["outcomes"]["validation"] == {"kept": 1, "no_detection": 0, "error": 1}
    assert info["source"]["validation_format"] == "kaggle-loc-csv"
    fg = read_release(built)[("foregrounds", "validation")]["ILSVRC2012_val_00000001"]
    assert fg["label"] == 1 and np.isfinite(fg["score"])
