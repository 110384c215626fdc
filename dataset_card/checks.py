"""Release checks before a push, and reading a release's columns for the card.

`check_release(folder)` verifies every shard: row groups small enough for the Hub's dataset
viewer, and the sha256 recorded in `recombinet.json`. It raises `ReleaseCheckError` naming
each bad shard, so a broken release never reaches the Hub.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow.parquet as pq
from datasets import ClassLabel, Features

from recombinet_hf.features import DATA_CONFIGS
from recombinet_hf.parquet_writer import max_row_group_bytes
from recombinet_hf.release import RELEASE_INFO_FILE, read_release_info, sha256_file

#: The Hub's dataset viewer refuses row groups over ~286 MiB ("TooBigContentError"); the
#: limit is not documented exactly, so releases must stay under 256 MiB (uncompressed, as
#: Parquet metadata reports it). The writer aims at 8-32 MiB (`parquet_writer.ROW_GROUP_BYTES`).
MAX_ROW_GROUP_BYTES = 256 * 1024 * 1024

_SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-\d{5}-of-\d{5}\.parquet$")


class ReleaseCheckError(ValueError):
    """A release folder is not fit to push; `problems` lists one line per bad shard or file."""

    def __init__(self, folder: Path, problems: list[str]) -> None:
        self.folder = folder
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"Release {folder} failed its checks ({len(problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class ShardReport:
    path: str  # relative to the release folder, POSIX
    num_rows: int
    num_row_groups: int
    max_row_group_bytes: int
    sha256: str


def release_shards(folder: str | os.PathLike) -> list[Path]:
    """Every Parquet shard under `data/`, sorted."""
    return sorted((Path(folder) / "data").rglob("*.parquet"))


def shard_split(path: Path) -> str:
    """The split of a shard from its name (`train-00000-of-00002.parquet` -> `train`)."""
    match = _SHARD_NAME.match(path.name)
    if match is None:
        raise ValueError(f"Shard {path} is not named <split>-<i>-of-<n>.parquet.")
    return match.group("split")


def check_release(folder: str | os.PathLike, *, max_row_group_bytes_limit: Optional[int] = None) -> list[ShardReport]:
    """Check every shard of the release in `folder`; return one report per shard.

    Raises `ReleaseCheckError` listing: row groups over `max_row_group_bytes_limit`, shards whose
    sha256 differs from `recombinet.json`, shards missing on disk or not listed there, and
    unreadable shards. Raises `FileNotFoundError` when `folder` is not a release.
    `max_row_group_bytes_limit` defaults to `MAX_ROW_GROUP_BYTES`.
    """
    folder = Path(folder)
    if max_row_group_bytes_limit is None:
        max_row_group_bytes_limit = MAX_ROW_GROUP_BYTES
    info = read_release_info(folder)
    recorded: dict = info.get("shards") or {}
    problems: list[str] = []
    reports: list[ShardReport] = []
    shards = release_shards(folder)
    if not shards:
        problems.append("no Parquet shard under data/ (build the release first with `recombinet build`)")
    for path in shards:
        relative = path.relative_to(folder).as_posix()
        try:
            metadata = pq.ParquetFile(path).metadata
            largest = max_row_group_bytes(path)
        except Exception as error:  # noqa: BLE001 - any unreadable shard is reported, not raised
            problems.append(f"{relative}: not a readable Parquet file ({type(error).__name__}: {error})")
            continue
        digest = sha256_file(path)
        if largest > max_row_group_bytes_limit:
            problems.append(
                f"{relative}: a row group holds {largest / 2**20:.1f} MiB, over the "
                f"{max_row_group_bytes_limit / 2**20:.0f} MiB limit (the Hub's viewer refuses ~286 MiB); "
                "rewrite it with smaller row groups (`write_shard(..., row_group_bytes=...)`)"
            )
        if relative not in recorded:
            problems.append(f"{relative}: not listed in {RELEASE_INFO_FILE} `shards` (rerun `write_release_info`)")
        elif recorded[relative] != digest:
            problems.append(
                f"{relative}: sha256 {digest[:12]}… differs from {RELEASE_INFO_FILE} ({str(recorded[relative])[:12]}…); "
                "the shard changed after the release was recorded"
            )
        reports.append(ShardReport(relative, metadata.num_rows, metadata.num_row_groups, largest, digest))
    on_disk = {path.relative_to(folder).as_posix() for path in shards}
    for missing in sorted(set(recorded) - on_disk):
        problems.append(f"{missing}: listed in {RELEASE_INFO_FILE} but missing on disk")
    if problems:
        raise ReleaseCheckError(folder, problems)
    return reports


def class_names(folder: str | os.PathLike) -> list[str]:
    """The label names, from the schema metadata of the first `foregrounds` shard."""
    shards = sorted((Path(folder) / "data" / "foregrounds").glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{folder} has no data/foregrounds/*.parquet shard.")
    features = Features.from_arrow_schema(pq.read_schema(shards[0]))
    label = features.get("label")
    if not isinstance(label, ClassLabel):
        raise ValueError(f"{shards[0]}: column `label` is {type(label).__name__}, expected ClassLabel.")
    return list(label.names)


def read_columns(
    folder: str | os.PathLike, configs: Optional[tuple[str, ...]] = None
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """`{(config, split): {"label": array, "fg_ratio": array}}` read from the shards (no images)."""
    folder = Path(folder)
    result: dict[tuple[str, str], dict[str, list]] = {}
    for config in configs or DATA_CONFIGS:
        for path in sorted((folder / "data" / config).glob("*.parquet")):
            schema = pq.read_schema(path)
            wanted = [name for name in ("label", "fg_ratio") if name in schema.names]
            table = pq.read_table(path, columns=wanted)
            entry = result.setdefault((config, shard_split(path)), {name: [] for name in wanted})
            for name in wanted:
                entry[name].append(table.column(name).to_numpy())
    return {key: {name: np.concatenate(parts) for name, parts in value.items()} for key, value in result.items()}
