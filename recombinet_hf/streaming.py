"""`load_dataset(..., streaming=True)`: recombine foreground rows as they are read from Parquet.

Why a `torch.utils.data.IterableDataset` of our own rather than `datasets.IterableDataset.map`:
a `map` function never sees the epoch that `IterableDataset.set_epoch` (called by accelerate
and `Trainer`) sets, and a typed `datasets.IterableDataset` encodes and decodes every output
image. `RecombineIterableDataset` has `set_epoch` (shared with persistent workers), `features`,
`shard(num_shards, index)` and `__len__`, and works with `DataLoader`, `Trainer` and DDP;
`recombinet_hf.split_dataset_by_node` splits it across nodes (and passes `datasets` objects on
to `datasets.distributed.split_dataset_by_node`).

Reading: the foreground shards are read one Parquet row group at a time (local files, or
`hf://` URLs through `huggingface_hub`'s `HfFileSystem`, which fetches byte ranges). The
background *index* (idx, key, label, fg_ratio) is read once; background images are read on
demand, a row group at a time, through a small LRU cache (`StreamedBackgrounds`, an adapter
that looks like the `backgrounds` Dataset to `Recombine`). The files come in the order
`datasets` resolves them, so rows are numbered as in the map-style dataset and the same
(seed, epoch, idx) gives the same sample in both.

Sharding: the units are row groups. Across nodes (`shard`), each node takes every
world_size-th row group when their number divides evenly, else every world_size-th row (all
nodes then read every row group); within a node, DataLoader workers take every
num_workers-th row group when there are enough, else every num_workers-th row. Every row is
yielded exactly once per epoch. With `shuffle=True` the row-group order is permuted per epoch
(the same on every node) and rows pass through a shuffle buffer seeded by
(seed, epoch, rank, worker).
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .recombine import Recombine

#: Background row groups kept decoded-from-Parquet (not as images) per process.
BACKGROUND_CACHE_ROW_GROUPS = 4
#: Open Parquet files kept per process.
OPEN_FILES = 16
#: Rows held by the shuffle buffer of a streaming dataset.
SHUFFLE_BUFFER_SIZE = 1000

# Sub-streams of the (seed, epoch) stream order, apart from the per-sample recombination streams.
_UNIT_ORDER, _ROW_BUFFER = 101, 102


class _LRU(OrderedDict):
    """A tiny least-recently-used cache: `get_or_make(key, make)`."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = max(int(size), 1)

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value


@dataclass(frozen=True)
class RowGroup:
    """One Parquet row group: `file` (index into the file list), `group`, `start` (the global row
    number of its first row, counting files in order) and `num_rows`."""

    file: int
    group: int
    start: int
    num_rows: int


class ParquetFiles:
    """Parquet files read a row group at a time: local paths, or URLs (`hf://datasets/...`)
    opened with fsspec (`token` goes to `HfFileSystem`). Open files are cached per process."""

    def __init__(self, files: Sequence[Union[str, os.PathLike]], *, token: Optional[Union[str, bool]] = None) -> None:
        self.files = [str(path) for path in files]
        if not self.files:
            raise ValueError("`files` is empty: no Parquet shard to read.")
        self.token = token
        self._open: Optional[_LRU] = None
        self._pid = -1
        self.row_groups: list[RowGroup] = []
        start = 0
        for number in range(len(self.files)):
            metadata = self.open(number).metadata
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                self.row_groups.append(RowGroup(number, group, start, rows))
                start += rows
        self.num_rows = start

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": None, "_pid": -1}

    def _open_file(self, path: str) -> pq.ParquetFile:
        if "://" not in path:
            return pq.ParquetFile(path)
        import fsspec

        options = {"token": self.token} if path.startswith("hf://") and self.token is not None else {}
        filesystem, inner = fsspec.core.url_to_fs(path, **options)
        return pq.ParquetFile(filesystem.open(inner, "rb"))

    def open(self, number: int) -> pq.ParquetFile:
        """The `pyarrow.parquet.ParquetFile` of file `number` (reopened in each new process)."""
        if self._open is None or self._pid != os.getpid():
            self._open, self._pid = _LRU(OPEN_FILES), os.getpid()
        return self._open.get_or_make(number, lambda: self._open_file(self.files[number]))

    def read(self, unit: RowGroup, columns: Optional[Sequence[str]] = None) -> pa.Table:
        return self.open(unit.file).read_row_group(unit.group, columns=list(columns) if columns else None)

    def read_columns(self, columns: Sequence[str]) -> pa.Table:
        """`columns` of every file, concatenated in file order (other columns are not fetched)."""
        return pa.concat_tables([self.open(number).read(columns=list(columns)) for number in range(len(self.files))])


class StreamedBackgrounds:
    """The `backgrounds` split as `Recombine` uses it, without loading the images.

    `backgrounds["idx" | "key" | "label" | "fg_ratio"]` are the index columns, read once;
    `backgrounds[row]` reads the row's row group (its `idx`, `key`, `label`, `image` columns)
    through an LRU cache of `cache_size` row groups per process and returns the row.
    """

    INDEX_COLUMNS = ("idx", "key", "label", "fg_ratio")
    ROW_COLUMNS = ("idx", "key", "label", "image")

    def __init__(self, files: ParquetFiles, *, cache_size: int = BACKGROUND_CACHE_ROW_GROUPS) -> None:
        self.files = files
        self.cache_size = int(cache_size)
        table = files.read_columns(self.INDEX_COLUMNS)
        self._columns = {
            "idx": np.asarray(table.column("idx").to_numpy(), dtype=np.int64),
            "key": table.column("key").to_pylist(),
            "label": np.asarray(table.column("label").to_numpy(), dtype=np.int64),
            "fg_ratio": np.asarray(table.column("fg_ratio").to_numpy(), dtype=np.float64),
        }
        self._starts = np.asarray([unit.start for unit in files.row_groups], dtype=np.int64)
        self._cache: Optional[_LRU] = None
        self._pid = -1

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": None, "_pid": -1}

    def __len__(self) -> int:
        return self.files.num_rows

    def locate(self, row: int) -> tuple[RowGroup, int]:
        """The row group holding global row `row` and the row's offset in it."""
        if not 0 <= int(row) < len(self):
            raise IndexError(f"Background row {row} out of range [0, {len(self)}).")
        unit = self.files.row_groups[int(np.searchsorted(self._starts, int(row), side="right")) - 1]
        return unit, int(row) - unit.start

    def __getitem__(self, key: Union[str, int]) -> Any:
        if isinstance(key, str):
            if key not in self._columns:
                raise KeyError(f"StreamedBackgrounds holds the index columns {list(self._columns)}, not {key!r}.")
            return self._columns[key]
        unit, offset = self.locate(int(key))
        if self._cache is None or self._pid != os.getpid():
            self._cache, self._pid = _LRU(self.cache_size), os.getpid()
        table = self._cache.get_or_make((unit.file, unit.group), lambda: self.files.read(unit, self.ROW_COLUMNS))
        return table.slice(offset, 1).to_pylist()[0]


class RecombineIterableDataset(torch.utils.data.IterableDataset):
    """A recombination config streamed from Parquet: see the module docstring.

    Args:
        foregrounds: the `foregrounds` shards of the split.
        recombiner: the `Recombine` (its backgrounds usually a `StreamedBackgrounds`).
        features: the output `datasets.Features` (for `label` names; not enforced).
        shuffle: permute row groups per epoch and shuffle rows through a buffer.
        seed: seed of the order (the recombination uses the recombiner's seed).
        shuffle_buffer_size: rows held by the shuffle buffer.
    """

    def __init__(
        self,
        foregrounds: ParquetFiles,
        recombiner: Recombine,
        *,
        features: Any = None,
        shuffle: bool = False,
        seed: int = 0,
        shuffle_buffer_size: int = SHUFFLE_BUFFER_SIZE,
    ) -> None:
        super().__init__()
        self.foregrounds = foregrounds
        self.recombiner = recombiner
        self.features = features
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.shuffle_buffer_size = max(int(shuffle_buffer_size), 1)
        self.rank, self.world_size = 0, 1

    def __repr__(self) -> str:
        node = f", rank={self.rank}/{self.world_size}" if self.world_size > 1 else ""
        return (
            f"RecombineIterableDataset(config={self.recombiner.config.name!r}, num_rows={self.foregrounds.num_rows}, "
            f"row_groups={len(self.foregrounds.row_groups)}, epoch={self.epoch}{node})"
        )

    # epochs and nodes ---------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.recombiner.epoch

    def set_epoch(self, epoch: int) -> None:
        """New recombinations and a new order; reaches running (persistent) workers, forked or spawned."""
        self.recombiner.set_epoch(epoch)

    def shard(self, num_shards: int, index: int) -> "RecombineIterableDataset":
        """The part of the data that node `index` of `num_shards` reads (shares the epoch)."""
        if int(num_shards) < 1 or not 0 <= int(index) < int(num_shards):
            raise ValueError(
                f"`index` must lie in [0, num_shards) with `num_shards` >= 1, got index={index!r}, "
                f"num_shards={num_shards!r}."
            )
        if self.world_size > 1:
            raise ValueError(
                f"This dataset is already node {self.rank} of {self.world_size}; shard the unsplit dataset."
            )
        part = copy.copy(self)
        part.rank, part.world_size = int(index), int(num_shards)
        return part

    def present_labels(self) -> list[int]:
        """Sorted labels of the foreground rows (read from the `label` column only)."""
        return sorted({int(v) for v in self.foregrounds.read_columns(["label"]).column("label").to_pylist()})

    # order and assignment -----------------------------------------------------------------
    def _epoch_units(self, epoch: int) -> list[RowGroup]:
        units = list(self.foregrounds.row_groups)
        if self.shuffle:
            order = np.random.default_rng([self.seed, int(epoch), _UNIT_ORDER]).permutation(len(units))
            units = [units[i] for i in order]
        return units

    def _node_units(self, epoch: int) -> tuple[list[RowGroup], bool]:
        """This node's row groups and whether it must also filter rows (uneven split)."""
        units = self._epoch_units(epoch)
        if self.world_size == 1:
            return units, False
        if len(units) % self.world_size == 0:
            return units[self.rank :: self.world_size], False
        return units, True

    def assignment(
        self, epoch: int, worker: int = 0, num_workers: int = 1
    ) -> tuple[list[RowGroup], Callable[[int], bool]]:
        """Row groups that `worker` of `num_workers` on this node reads at `epoch`, and the test its
        rows (global row numbers) must pass."""
        units, node_rows = self._node_units(epoch)
        worker_rows = False
        if num_workers > 1:
            if len(units) >= num_workers:
                units = units[worker::num_workers]
            else:
                worker_rows = True
        rank, world_size = self.rank, self.world_size

        def keep(row: int) -> bool:
            local = row
            if node_rows:
                if row % world_size != rank:
                    return False
                local = row // world_size
            return not worker_rows or local % num_workers == worker

        return units, keep

    def __len__(self) -> int:
        """Rows this node yields in the current epoch (over all its DataLoader workers).

        With row groups of unequal size split across nodes it can change from epoch to epoch.
        DataLoader workers each end with a partial batch, so a loop that runs
        `ceil(len / batch_size)` batches (`Trainer` sizes epochs this way) may stop a few rows
        short of the epoch; iterate to exhaustion (under DDP inside `model.join()`) to see every row.
        """
        units, node_rows = self._node_units(self.epoch)
        if not node_rows:
            return sum(unit.num_rows for unit in units)
        total = self.foregrounds.num_rows
        return (total - self.rank + self.world_size - 1) // self.world_size

    # iteration ----------------------------------------------------------------------------
    def _rows(self, units: Sequence[RowGroup], keep: Callable[[int], bool]) -> Iterator[dict]:
        for unit in units:
            table = self.foregrounds.read(unit)
            for offset, row in enumerate(table.to_pylist()):
                if keep(unit.start + offset):
                    yield row

    def _shuffled(self, rows: Iterator[dict], rng: np.random.Generator) -> Iterator[dict]:
        buffer: list[dict] = []
        for row in rows:
            if len(buffer) < self.shuffle_buffer_size:
                buffer.append(row)
                continue
            slot = int(rng.integers(len(buffer)))
            yield buffer[slot]
            buffer[slot] = row
        order = rng.permutation(len(buffer))
        for slot in order:
            yield buffer[slot]

    def iter_rows(self, epoch: Optional[int] = None, worker: int = 0, num_workers: int = 1) -> Iterator[dict]:
        """The foreground rows (not recombined) that `worker` of `num_workers` reads at `epoch`."""
        epoch = self.epoch if epoch is None else int(epoch)
        units, keep = self.assignment(epoch, worker, num_workers)
        rows = self._rows(units, keep)
        if self.shuffle:
            rows = self._shuffled(rows, np.random.default_rng([self.seed, epoch, _ROW_BUFFER, self.rank, worker]))
        return rows

    def __iter__(self) -> Iterator[dict]:
        epoch = self.epoch  # read once: one pass is one epoch
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for row in self.iter_rows(epoch, worker, num_workers):
            yield self.recombiner.recombine(row, epoch)


def split_dataset_by_node(dataset: Any, rank: int, world_size: int) -> Any:
    """Node `rank` of `world_size`'s part of a dataset: a `RecombineIterableDataset` is split by
    row groups or rows (see the module docstring); `datasets` objects go to
    `datasets.distributed.split_dataset_by_node`."""
    if isinstance(dataset, RecombineIterableDataset):
        return dataset.shard(world_size, rank)
    from datasets.distributed import split_dataset_by_node as split

    return split(dataset, rank=rank, world_size=world_size)


def streaming_features(foreground_features: Any, *, image_column: Optional[str] = "image") -> Any:
    """The output `Features` of a recombined stream: `image` (when no `image_transform`), `label`,
    `fg_key`, `bg_key`, `bg_label`. `pixel_values`, `mask` and `params` are not described."""
    from datasets import Features, Image, Value

    label = foreground_features["label"]
    columns: dict[str, Any] = {}
    if image_column:
        columns[image_column] = Image()
    columns.update({"label": label, "fg_key": Value("string"), "bg_key": Value("string"), "bg_label": label})
    return Features(columns)
