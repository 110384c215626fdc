"""Shards (fixed units of work), which ranks do which, and the files that mark progress.

Layout. The items of a split, sorted by key, have positions 0..n-1 (their `idx`). They are
cut into batches of `batch_size` consecutive positions, and shard i of N holds the
contiguous batches ``[floor(i·b/N), floor((i+1)·b/N))`` of the split's b batches. So a
shard is a contiguous range of positions and a whole number of batches: an image is
segmented in the same batch whatever N, and the release is the same for any shard count,
any rank count and any restart (given the same `--batch-size`). N is `--num-shards`, else
``ceil(n / shard_size)``, and never more than b (no empty shards).

Files of shard i of N of split s (``<s>-<i:05d>-of-<N:05d>``):
``data/<config>/<s>-....parquet`` for the three data configs (each written atomically),
then ``outcomes/<s>-....json`` (atomically, LAST): a shard is finished exactly when its
outcome file exists. A rerun skips finished shards and redoes the others from scratch
(their partly written Parquet files are overwritten).

Ranks. Shards of all splits are put in one list (train first) and rank r of W takes
shards r, r+W, r+2W, ... The rank comes from ``--shard-index``/``--num-ranks``, else
torchrun/accelerate (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``), else a Slurm array
(``SLURM_ARRAY_TASK_ID`` with ``SLURM_ARRAY_TASK_COUNT`` or ``SLURM_ARRAY_TASK_MIN``/
``SLURM_ARRAY_TASK_MAX``/``SLURM_ARRAY_TASK_STEP``), else a single rank.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from recombinet_hf._files import atomic_path
from recombinet_hf.features import DATA_CONFIGS, SPLITS
from recombinet_hf.parquet_writer import shard_path

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "ShardSpec",
    "RankInfo",
    "num_shards_for",
    "plan_split",
    "plan_shards",
    "shards_for_rank",
    "resolve_rank",
    "outcome_path",
    "data_paths",
    "is_finished",
    "write_json_atomic",
    "read_json",
]

DEFAULT_SHARD_SIZE = 1000
OUTCOMES_DIR = "outcomes"


@dataclass(frozen=True)
class ShardSpec:
    """Shard `index` of `num_shards` of `split`: positions [start, stop) of the sorted items."""

    split: str
    index: int
    num_shards: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        """``train-00003-of-00016``."""
        return f"{self.split}-{self.index:05d}-of-{self.num_shards:05d}"

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class RankInfo:
    """This process: rank `rank` of `world_size`, started by `launcher`
    (``"single"``, ``"cli"``, ``"torchrun"`` or ``"slurm-array"``), GPU `local_rank`."""

    rank: int
    world_size: int
    launcher: str
    local_rank: int = 0


def _check_positive(name: str, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")


def num_shards_for(
    num_images: int, *, batch_size: int, num_shards: Optional[int] = None, shard_size: int = DEFAULT_SHARD_SIZE
) -> int:
    """Shards of a split of `num_images`: `num_shards` (else ceil(n / shard_size)), at most
    the number of batches, at least 1."""
    _check_positive("--batch-size", batch_size)
    _check_positive("--num-shards", num_shards)
    _check_positive("--shard-size", shard_size)
    batches = max(1, math.ceil(num_images / batch_size))
    wanted = num_shards if num_shards is not None else math.ceil(num_images / shard_size)
    return max(1, min(wanted, batches))


def plan_split(split: str, num_images: int, num_shards: int, batch_size: int) -> list[ShardSpec]:
    """The shards of one split (see the module docstring for the layout)."""
    _check_positive("--batch-size", batch_size)
    batches = max(1, math.ceil(num_images / batch_size))
    if not 1 <= num_shards <= batches:
        raise ValueError(f"`num_shards` must be in [1, {batches}] for {num_images} images in batches of {batch_size}; got {num_shards}.")
    specs = []
    for index in range(num_shards):
        first, last = index * batches // num_shards, (index + 1) * batches // num_shards
        specs.append(
            ShardSpec(split, index, num_shards, min(first * batch_size, num_images), min(last * batch_size, num_images))
        )
    return specs


def plan_shards(split_sizes: Mapping[str, tuple[int, int]], batch_size: int) -> list[ShardSpec]:
    """All shards, splits in release order; `split_sizes`: split -> (num_images, num_shards)."""
    specs: list[ShardSpec] = []
    for split in SPLITS:
        if split in split_sizes:
            num_images, num_shards = split_sizes[split]
            specs.extend(plan_split(split, num_images, num_shards, batch_size))
    return specs


def shards_for_rank(shards: Sequence[ShardSpec], rank: int, world_size: int) -> list[ShardSpec]:
    """Round-robin: rank r of W takes shards r, r+W, r+2W, ..."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size}).")
    return list(shards[rank::world_size])


def _env_int(env: Mapping[str, str], name: str) -> Optional[int]:
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"Environment variable {name}={value!r} is not an integer.") from None


def resolve_rank(
    shard_index: Optional[int] = None, num_ranks: Optional[int] = None, env: Optional[Mapping[str, str]] = None
) -> RankInfo:
    """Which rank this process is (see the module docstring for the order of the sources)."""
    env = os.environ if env is None else env
    local_rank = _env_int(env, "LOCAL_RANK") or 0
    if shard_index is not None or num_ranks is not None:
        if shard_index is None or num_ranks is None:
            raise ValueError("Give both `--shard-index` and `--num-ranks` (or neither).")
        _check_positive("--num-ranks", num_ranks)
        if not 0 <= shard_index < num_ranks:
            raise ValueError(f"`--shard-index` must be in [0, {num_ranks}) for `--num-ranks {num_ranks}`; got {shard_index}.")
        return RankInfo(shard_index, num_ranks, "cli" if num_ranks > 1 else "single", local_rank)
    rank, world = _env_int(env, "RANK"), _env_int(env, "WORLD_SIZE")
    if rank is not None and world is not None:
        if not 0 <= rank < world:
            raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world}).")
        return RankInfo(rank, world, "torchrun" if world > 1 else "single", local_rank)
    task = _env_int(env, "SLURM_ARRAY_TASK_ID")
    if task is not None:
        low = _env_int(env, "SLURM_ARRAY_TASK_MIN") or 0
        high = _env_int(env, "SLURM_ARRAY_TASK_MAX")
        step = _env_int(env, "SLURM_ARRAY_TASK_STEP") or 1
        count = _env_int(env, "SLURM_ARRAY_TASK_COUNT")
        if count is None:
            if high is None:
                raise ValueError("SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX is.")
            count = (high - low) // step + 1
        if (task - low) % step:
            raise ValueError(
                f"SLURM_ARRAY_TASK_ID={task} is not MIN + k*STEP ({low} + k*{step}); use a range array like "
                "`--array=0-99` or pass `--shard-index`/`--num-ranks`."
            )
        rank = (task - low) // step
        if not 0 <= rank < count:
            raise ValueError(
                f"Slurm array task {task} is rank {rank}, outside [0, {count}); the array must be a contiguous range "
                "(e.g. `--array=0-99`), or pass `--shard-index`/`--num-ranks`."
            )
        return RankInfo(rank, count, "slurm-array" if count > 1 else "single", local_rank)
    return RankInfo(0, 1, "single", local_rank)


def outcome_path(folder: str | os.PathLike, spec: ShardSpec) -> Path:
    """``outcomes/<split>-<i:05d>-of-<N:05d>.json``: written last, marks the shard finished."""
    return Path(folder) / OUTCOMES_DIR / f"{spec.name}.json"


def data_paths(folder: str | os.PathLike, spec: ShardSpec) -> dict[str, Path]:
    """The shard's Parquet file of each data config."""
    return {config: shard_path(folder, config, spec.split, spec.index, spec.num_shards) for config in DATA_CONFIGS}


def is_finished(folder: str | os.PathLike, spec: ShardSpec) -> bool:
    """True when the shard's outcome file exists (it is written after its Parquet files)."""
    return outcome_path(folder, spec).is_file()


def write_json_atomic(path: str | os.PathLike, payload: object) -> Path:
    """Write JSON to a temp file in the same folder, then rename it over `path`."""
    path = Path(path)
    with atomic_path(path) as temp, open(temp, "w", encoding="utf-8") as stream:
        json.dump(payload, stream, indent=2, sort_keys=True)
        stream.write("\n")
    return path


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON file; errors name the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete it to redo that step.") from error
