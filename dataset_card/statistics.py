"""Release statistics as pure functions of column arrays: no I/O, no plotting.

`release_statistics` takes the `label`/`fg_ratio` columns of each (config, split) and the
number of classes, and returns a `ReleaseStatistics` that the card renders as tables and
`plots.py` draws. Reading the columns from Parquet lives in `checks.read_columns`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

#: Pruning thresholds the card reports (`pt0.5` .. `pt1.0`).
PRUNING_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: fg_ratio histogram bins: 20 bins of width 0.05 over [0, 1].
FG_RATIO_BINS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 21), 2).tolist())


@dataclass(frozen=True)
class CountSpread:
    """How many rows each class has in one split (classes without rows count as 0)."""

    num_classes: int
    min: int
    median: float
    mean: float
    max: int
    empty_classes: int


@dataclass(frozen=True)
class Histogram:
    """Counts of values in `[edges[i], edges[i + 1])` (the last bin includes 1.0)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class PruningRow:
    """Backgrounds kept by pruning threshold `pt` in one split (`fg_ratio < pt`).

    `fallback_classes`: classes with fewer than `min(K, own count)` backgrounds under `pt`,
    which `same` serves from their K lowest-fg_ratio backgrounds instead.
    """

    pt: float
    kept: int
    total: int
    fallback_classes: int

    @property
    def percent(self) -> float:
        return 100.0 * self.kept / self.total if self.total else 0.0


@dataclass(frozen=True)
class ReleaseStatistics:
    """Everything the card reports about the data of a release."""

    counts: dict[str, dict[str, int]]  # config -> split -> rows
    class_spread: dict[str, CountSpread]  # split -> foreground rows per class
    fg_ratio: dict[str, Histogram]  # split -> histogram of foreground fg_ratio
    pruning: dict[str, list[PruningRow]]  # split -> rows per pt
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # split ("all" if unsplit) -> outcome -> n

    @property
    def splits(self) -> list[str]:
        return sorted({split for per_split in self.counts.values() for split in per_split}, key=_split_order)

    @property
    def num_examples(self) -> int:
        """Foreground rows over all splits: the size the Hub's size category describes."""
        return sum(self.counts.get("foregrounds", {}).values())


def _split_order(split: str) -> tuple[int, str]:
    return ({"train": 0, "validation": 1, "test": 2}.get(split, 3), split)


def count_spread(labels: Sequence[int], num_classes: int) -> CountSpread:
    """Min / median / mean / max rows per class, with empty classes counted as 0."""
    labels = np.asarray(labels, dtype=np.int64)
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be >= 1, got {num_classes!r}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], got values in [{labels.min()}, {labels.max()}].")
    per_class = np.bincount(labels, minlength=num_classes)
    return CountSpread(
        num_classes=num_classes,
        min=int(per_class.min()),
        median=float(np.median(per_class)),
        mean=float(per_class.mean()),
        max=int(per_class.max()),
        empty_classes=int((per_class == 0).sum()),
    )


def histogram(values: Sequence[float], edges: Sequence[float] = FG_RATIO_BINS) -> Histogram:
    """Counts of `values` per bin; values outside [edges[0], edges[-1]] are clipped into the end bins."""
    edges = np.asarray(edges, dtype=np.float64)
    values = np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1])
    counts, _ = np.histogram(values, bins=edges)
    return Histogram(edges=tuple(float(e) for e in edges), counts=tuple(int(c) for c in counts))


def pruning_table(
    fg_ratios: Sequence[float],
    labels: Sequence[int],
    thresholds: Sequence[float] = PRUNING_THRESHOLDS,
    *,
    min_per_class: int = 8,
) -> list[PruningRow]:
    """Backgrounds kept at each `pt` (`fg_ratio < pt`, as `recombinet_hf.pool.BackgroundPool`
    prunes) and how many classes fall back to their lowest-fg_ratio backgrounds."""
    fg_ratios = np.asarray(fg_ratios, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if fg_ratios.shape != labels.shape:
        raise ValueError(f"`fg_ratios` and `labels` must have the same length, got {len(fg_ratios)} and {len(labels)}.")
    rows = []
    classes, per_class = np.unique(labels, return_counts=True) if len(labels) else (np.array([]), np.array([]))
    for pt in thresholds:
        kept = fg_ratios < pt
        kept_per_class = np.array([int(kept[labels == label].sum()) for label in classes])
        needed = np.minimum(min_per_class, per_class)
        fallback = int(((kept_per_class < needed) | (kept_per_class == 0)).sum()) if len(classes) else 0
        rows.append(PruningRow(pt=float(pt), kept=int(kept.sum()), total=len(fg_ratios), fallback_classes=fallback))
    return rows


def normalise_outcomes(outcomes: object) -> dict[str, dict[str, int]]:
    """`recombinet.json` `outcomes` as {split or "all": {outcome: count}}.

    Accepts `{"kept": 10, "no_detection": 2, "error": 0}`, the same per split
    (`{"train": {...}, "validation": {...}}`), or lists of keys/records per outcome (counted).
    """
    if not isinstance(outcomes, Mapping) or not outcomes:
        return {}

    def count(value: object) -> int:
        if isinstance(value, (list, tuple, dict)):
            return len(value)
        return int(value)  # type: ignore[arg-type]

    if all(isinstance(value, Mapping) for value in outcomes.values()):
        return {str(split): {str(k): count(v) for k, v in per.items()} for split, per in outcomes.items()}  # type: ignore[union-attr]
    return {"all": {str(key): count(value) for key, value in outcomes.items()}}


def release_statistics(
    columns: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
    num_classes: int,
    *,
    outcomes: object = None,
    min_per_class: int = 8,
) -> ReleaseStatistics:
    """Statistics from `{(config, split): {"label": ..., "fg_ratio": ...}}` column arrays.

    `fg_ratio` is needed for `foregrounds` and `backgrounds`; other configs need `label` only.
    """
    counts: dict[str, dict[str, int]] = {}
    for (config, split), table in columns.items():
        counts.setdefault(config, {})[split] = len(table["label"])
    for per_split in counts.values():
        ordered = dict(sorted(per_split.items(), key=lambda item: _split_order(item[0])))
        per_split.clear()
        per_split.update(ordered)
    spread, ratios, pruning = {}, {}, {}
    for (config, split), table in sorted(columns.items(), key=lambda item: _split_order(item[0][1])):
        if config == "foregrounds":
            spread[split] = count_spread(table["label"], num_classes)
            ratios[split] = histogram(table["fg_ratio"])
        elif config == "backgrounds":
            pruning[split] = pruning_table(table["fg_ratio"], table["label"], min_per_class=min_per_class)
    return ReleaseStatistics(
        counts=counts, class_spread=spread, fg_ratio=ratios, pruning=pruning, outcomes=normalise_outcomes(outcomes)
    )


#: The Hub's `size_categories` buckets (upper bounds, exclusive).
_SIZE_BUCKETS: tuple[tuple[int, str], ...] = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)


def size_category(num_examples: int) -> str:
    """The Hub's `size_categories` value for a number of examples."""
    for bound, name in _SIZE_BUCKETS:
        if num_examples < bound:
            return name
    return "1B<n<10B"
