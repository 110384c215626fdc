"""The Parquet writer: one shard of one data config, cast to the release schema, written atomically.

Rows are dicts with the columns of :func:`recombinet_hf.features.release_features`; image
columns may hold PIL images (encoded here with the release codec of the config) or bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ._files import atomic_path
from .features import release_features
from .images import encode_image

#: Codec of each config's image column.
IMAGE_FORMATS = {"foregrounds": ("image", "WEBP"), "backgrounds": ("image", "JPEG"), "masks": ("mask", "PNG")}

#: Byte budget of one row group per config. The Hub's viewer refuses row groups over ~286 MiB
#: and `datasets` writes 100 MB ones, so we stay well below both; backgrounds are read one
#: random row at a time when streaming (a whole row group per read), so theirs are smallest.
ROW_GROUP_BYTES = {"foregrounds": 32 * 1024 * 1024, "backgrounds": 8 * 1024 * 1024, "masks": 32 * 1024 * 1024}


def shard_filename(split: str, index: int, num_shards: int) -> str:
    """`train-00003-of-00016.parquet`: the Hub's shard naming."""
    return f"{split}-{index:05d}-of-{num_shards:05d}.parquet"


def shard_path(folder: str | os.PathLike, config: str, split: str, index: int, num_shards: int) -> Path:
    return Path(folder) / "data" / config / shard_filename(split, index, num_shards)


def _encode_row(config: str, row: dict) -> dict:
    column, image_format = IMAGE_FORMATS[config]
    value = row[column]
    if isinstance(value, Image.Image):
        value = encode_image(value, image_format)
    if isinstance(value, (bytes, bytearray)):
        value = {"bytes": bytes(value), "path": None}
    return {**row, column: value}


def _row_groups(rows: Sequence[dict], column: str, budget: int) -> Iterable[Sequence[dict]]:
    start, size = 0, 0
    for end, row in enumerate(rows):
        size += len(row[column]["bytes"] or b"")
        if size > budget and end > start:
            yield rows[start:end]
            start, size = end, len(row[column]["bytes"] or b"")
    if start < len(rows):
        yield rows[start:]


def write_shard(
    path: str | os.PathLike,
    config: str,
    rows: Sequence[dict],
    class_names: Sequence[str],
    *,
    row_group_bytes: Optional[int] = None,
) -> Path:
    """Write `rows` of data config `config` to `path` atomically (temp file + rename).

    The table is cast to the release schema (`release_features(config, class_names)`), so a
    missing or mistyped column fails here, naming the column, rather than in a user's loader.
    An empty `rows` writes a valid shard with zero rows.
    """
    features = release_features(config, class_names)
    schema = features.arrow_schema
    encoded = [_encode_row(config, row) for row in rows]
    for number, row in enumerate(encoded):
        missing = [name for name in features if name not in row]
        if missing:
            raise ValueError(f"Row {number} (key {row.get('key')!r}) for config {config!r} lacks column(s) {missing}.")
    path = Path(path)
    with atomic_path(path) as temp_name, pq.ParquetWriter(temp_name, schema) as writer:
        column = IMAGE_FORMATS[config][0]
        budget = ROW_GROUP_BYTES[config] if row_group_bytes is None else row_group_bytes
        for group in _row_groups(encoded, column, budget):
            table = pa.Table.from_pylist([{name: row[name] for name in features} for row in group], schema=schema)
            writer.write_table(table)
        if not encoded:
            writer.write_table(schema.empty_table())
    return path


def max_row_group_bytes(path: str | os.PathLike) -> int:
    """The largest uncompressed row group of a Parquet file, in bytes (for the Hub viewer's limit)."""
    metadata = pq.ParquetFile(path).metadata
    return max((metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)), default=0)
