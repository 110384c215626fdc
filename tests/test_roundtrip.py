import io
import json

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from recombinet_hf.features import release_features
from recombinet_hf.parquet_writer import max_row_group_bytes, write_shard
from synthetic import CLASS_NAMES


def test_foregrounds_round_trip_through_datasets(release):
    dataset = datasets.load_dataset(str(release), "foregrounds", split="train")
    assert dataset.features == release_features("foregrounds", CLASS_NAMES)
    assert dataset.features["label"].names == CLASS_NAMES
    assert sorted(dataset["idx"]) == list(range(12))
    for row in dataset:
        image = row["image"]
        # libwebp stores no alpha plane for an entirely opaque crop: it decodes as RGB then
        assert image.mode == "RGBA" or row["alpha_coverage"] == 1.0
        image = image.convert("RGBA")
        alpha = np.asarray(image.getchannel("A"))
        assert set(np.unique(alpha)) <= {0, 255}  # the synthetic masks are binary and WebP is lossless
        assert alpha.mean() / 255 == pytest.approx(row["alpha_coverage"], abs=1e-6)
        x0, y0, x1, y1 = row["box"]
        assert image.size == (x1 - x0, y1 - y0)
        assert row["key"].startswith(f"train_{row['label']}_")


def test_alpha_and_colour_exact_after_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (17, 23, 4), dtype=np.uint8)
    row = {"idx": 0, "key": "k", "label": 1, "image": Image.fromarray(pixels, "RGBA"), "box": [1, 2, 24, 19],
           "source_size": [30, 30], "fg_ratio": 0.25, "alpha_coverage": float(pixels[..., 3].mean() / 255), "score": 0.5}
    path = write_shard(tmp_path / "data" / "foregrounds" / "train-00000-of-00001.parquet", "foregrounds", [row], ["a", "b"])
    table = pq.read_table(path)
    decoded = Image.open(io.BytesIO(table.column("image")[0].as_py()["bytes"]))
    assert np.array_equal(np.asarray(decoded), pixels)  # RGB under alpha 0 too (exact WebP)
    assert table.column("box")[0].as_py() == [1, 2, 24, 19]
    assert json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]["label"]["names"] == ["a", "b"]


def test_every_config_loads_with_plain_datasets(release):
    for config, columns in [
        ("foregrounds", {"idx", "key", "label", "image", "box", "source_size", "fg_ratio", "alpha_coverage", "score"}),
        ("backgrounds", {"idx", "key", "label", "image", "fg_ratio", "source_size"}),
        ("masks", {"idx", "key", "label", "mask", "box"}),
        ("same-range-pt0.8", {"idx", "key", "label", "image", "box", "source_size", "fg_ratio", "alpha_coverage", "score"}),
    ]:
        loaded = datasets.load_dataset(str(release), config)
        assert set(loaded) == {"train", "validation"}
        assert set(loaded["train"].column_names) == columns
        assert loaded["train"].features["label"].names == CLASS_NAMES
        assert loaded["validation"].num_rows == 12
    backgrounds = datasets.load_dataset(str(release), "backgrounds", split="validation")
    masks = datasets.load_dataset(str(release), "masks", split="validation")
    assert backgrounds[0]["image"].mode == "RGB"
    assert masks[0]["mask"].mode == "L"
    assert backgrounds[0]["image"].size == tuple(backgrounds[0]["source_size"]) == masks[0]["mask"].size


def test_writer_rejects_missing_column_naming_the_row(tmp_path):
    with pytest.raises(ValueError, match=r"Row 0 \(key 'k'\) for config 'masks' lacks column\(s\) \['box'\]"):
        write_shard(tmp_path / "m.parquet", "masks", [{"idx": 0, "key": "k", "label": 0, "mask": b"x"}], ["a"])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_small_row_groups(tmp_path):
    rows = [{"idx": i, "key": str(i), "label": 0, "mask": Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64), dtype=np.uint8)), "box": [0, 0, 1, 1]} for i in range(20)]
    path = write_shard(tmp_path / "m.parquet", "masks", rows, ["a"], row_group_bytes=20_000)
    assert pq.ParquetFile(path).metadata.num_row_groups > 1
    assert max_row_group_bytes(path) < 40_000
