"""Helpers for the builder tests: small ImageNet-style source folders of generated photos,
broken image files, and reading a built release back row by row, pixels decoded."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from synthetic import make_photo

#: Three real ImageNet-1k wnids (tench, goldfish, great white shark) = labels 0, 1, 2.
WNIDS = ("n01440764", "n01443537", "n01484850")


def make_imagenet_folder(
    root: Path, *, train_per_class: int = 2, val_per_class: int = 1, wnids: Sequence[str] = WNIDS[:2], size=(64, 48)
) -> Path:
    """`root/train/<wnid>/<wnid>_<n>.JPEG` and `root/val/<wnid>/ILSVRC2012_val_<n>.JPEG` photos."""
    number = 0
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for label, wnid in enumerate(wnids):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(per_class):
                number += 1
                image, _ = make_photo(*size, label, 0.15, seed=number)
                name = f"{wnid}_{n}.JPEG" if split == "train" else f"ILSVRC2012_val_{number:08d}.JPEG"
                image.save(folder / name, quality=92)
    return root


def uniform_classifier(class_names, device="cpu"):
    """A `--classifier MODULE:FACTORY` factory: equal probability for every class."""

    def classify(image: Image.Image) -> np.ndarray:
        return np.full(len(class_names), 1.0 / len(class_names))

    classify.version = {"backend": "uniform", "num_classes": len(class_names)}
    return classify


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares `width` x `height` but whose pixel data is one compressed
    row (a few bytes): decoding it would need width*height*3 bytes of memory."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * min(width, 16)))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _decode(value) -> np.ndarray:
    with Image.open(io.BytesIO(value["bytes"])) as image:
        return np.array(image)


def read_release(folder: Path) -> dict[tuple[str, str], dict[str, dict]]:
    """{(config, split): {key: row}} of every shard under `folder/data`, images decoded to arrays."""
    tables: dict[tuple[str, str], dict[str, dict]] = {}
    for path in sorted((Path(folder) / "data").rglob("*.parquet")):
        config, split = path.parent.name, path.name.split("-")[0]
        for row in pq.read_table(path).to_pylist():
            for column in ("image", "mask"):
                if column in row:
                    row[column] = _decode(row[column])
            rows = tables.setdefault((config, split), {})
            assert row["key"] not in rows, f"key {row['key']} twice in {config}/{split}"
            rows[row["key"]] = row
    return tables


def assert_same_release(a: Path, b: Path) -> None:
    """Same rows by key, same columns, same decoded pixels."""
    left, right = read_release(a), read_release(b)
    assert sorted(left) == sorted(right)
    for name in left:
        assert sorted(left[name]) == sorted(right[name]), name
        for key, row in left[name].items():
            other = right[name][key]
            assert sorted(row) == sorted(other)
            for column, value in row.items():
                if isinstance(value, np.ndarray):
                    np.testing.assert_array_equal(value, other[column], err_msg=f"{name} {key} {column}")
                else:
                    assert value == other[column], (name, key, column)


def shard_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every Parquet file under `folder/data`, by relative path."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((Path(folder) / "data").rglob("*.parquet"))
    }
