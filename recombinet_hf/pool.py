"""The background pool: an index of (idx, key, label, fg_ratio, row) with pruning and the
per-class fallback. Images are not held here; they are decoded on demand by row."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ._validation import check_choice

logger = logging.getLogger(__name__)

#: Default minimum number of backgrounds a class keeps under pruning (`same`).
MIN_BACKGROUNDS_PER_CLASS = 8


@dataclass
class BackgroundPool:
    """Which background rows each foreground may be pasted on.

    Args:
        idx, keys, labels, fg_ratios: one entry per background row, in row order.
        background_combination: `same`, `all` or `orig`.
        pruning_threshold: rows with `fg_ratio >= pruning_threshold` are pruned.
        min_backgrounds_per_class: under `same`, a class with fewer unpruned backgrounds than
            this uses its `min_backgrounds_per_class` lowest-fg_ratio backgrounds (or all it has)
            instead, and is listed in `fallback_classes`. Under `all`, the same applies to the
            whole pool.
    """

    idx: np.ndarray
    keys: Sequence[str]
    labels: np.ndarray
    fg_ratios: np.ndarray
    background_combination: str = "all"
    pruning_threshold: float = 0.8
    min_backgrounds_per_class: int = MIN_BACKGROUNDS_PER_CLASS
    fallback_classes: list[int] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        check_choice("background_combination", self.background_combination, ("same", "all", "orig"))
        if int(self.min_backgrounds_per_class) < 1:
            raise ValueError(f"`min_backgrounds_per_class` must be >= 1, got {self.min_backgrounds_per_class!r}.")
        self.idx = np.asarray(self.idx, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.fg_ratios = np.asarray(self.fg_ratios, dtype=np.float64)
        # Lookups without per-row Python objects (ImageNet has 1.28M backgrounds per worker):
        # idx through a sorted copy, keys only when first needed (`orig`, reconstructions).
        self._idx_order = np.argsort(self.idx, kind="stable")
        self._sorted_idx = self.idx[self._idx_order]
        self._row_by_key: Optional[dict[str, int]] = None
        self._candidates: dict[int, np.ndarray] = {}
        if self.background_combination == "same":
            order = np.argsort(self.labels, kind="stable")
            classes, starts = np.unique(self.labels[order], return_index=True)
            for label, rows in zip(classes, np.split(order, starts[1:])):
                self._candidates[int(label)] = self._prune(rows, int(label))
        elif self.background_combination == "all":
            self._all = self._prune(np.arange(len(self.idx)), None)

    def _prune(self, rows: np.ndarray, label) -> np.ndarray:
        kept = rows[self.fg_ratios[rows] < self.pruning_threshold]
        if len(kept) >= min(self.min_backgrounds_per_class, len(rows)) and len(kept) > 0:
            return kept
        # Too few left: fall back to the lowest-fg_ratio backgrounds, never to a single one.
        order = rows[np.argsort(self.fg_ratios[rows], kind="stable")]
        fallback = order[: self.min_backgrounds_per_class]
        if label is not None:
            self.fallback_classes.append(label)
        logger.warning(
            "Pruning at pt=%s leaves %d background(s) for %s; using its %d lowest-fg_ratio backgrounds instead.",
            self.pruning_threshold,
            len(kept),
            f"class {label}" if label is not None else "the pool",
            len(fallback),
        )
        return fallback

    def __len__(self) -> int:
        return len(self.idx)

    def candidates(self, label: int) -> np.ndarray:
        """Rows a foreground of class `label` may use (not for `orig`)."""
        if self.background_combination == "all":
            return self._all
        if self.background_combination == "same":
            if int(label) not in self._candidates:
                raise ValueError(f"No background of class {label} in this split: `same` cannot recombine it.")
            return self._candidates[int(label)]
        raise ValueError("`orig` pastes each foreground on its own background: use `row_of_key`.")

    def sample_row(self, rng: np.random.Generator, *, label: int, key: str) -> int:
        """Draw a background row for a foreground of class `label` with source `key`."""
        if self.background_combination == "orig":
            return self.row_of_key(key)
        rows = self.candidates(label)
        return int(rows[rng.integers(len(rows))])

    def row_of_key(self, key: str) -> int:
        if self._row_by_key is None:
            self._row_by_key = {key: row for row, key in enumerate(self.keys)}
        if key not in self._row_by_key:
            raise KeyError(f"No background row with key {key!r} (needed for its own background).")
        return self._row_by_key[key]

    def row_of_idx(self, idx: int) -> int:
        position = int(np.searchsorted(self._sorted_idx, int(idx)))
        if position == len(self._sorted_idx) or self._sorted_idx[position] != int(idx):
            raise KeyError(f"No background row with idx {idx!r}.")
        return int(self._idx_order[position])
