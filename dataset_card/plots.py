"""The card's pictures, drawn with matplotlib's Agg canvas (no pyplot, no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from recombinet_hf._files import atomic_path

from .statistics import Histogram

_SPLIT_COLOURS = {"train": "#3b75af", "validation": "#ef8636"}


def _save(figure: Figure, out: str | os.PathLike) -> Path:
    out = Path(out)
    FigureCanvasAgg(figure)
    with atomic_path(out) as temp:
        figure.savefig(temp, format="png", dpi=100)
    return out


def plot_fg_ratio_histogram(histograms: Mapping[str, Histogram], out: str | os.PathLike) -> Path:
    """Bar chart of the foreground fg_ratio per split (share of the split's foregrounds per bin)."""
    figure = Figure(figsize=(6.4, 3.2))
    axes = figure.add_subplot()
    splits = list(histograms)
    for number, split in enumerate(splits):
        hist = histograms[split]
        edges = np.asarray(hist.edges)
        counts = np.asarray(hist.counts, dtype=np.float64)
        share = counts / counts.sum() if counts.sum() else counts
        width = np.diff(edges) / max(len(splits), 1)
        axes.bar(
            edges[:-1] + width * number, share, width=width, align="edge",
            color=_SPLIT_COLOURS.get(split), label=f"{split} (n={int(counts.sum())})",
        )
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("fg_ratio (object area / image area)")
    axes.set_ylabel("share of foregrounds")
    axes.set_title("Object size: fg_ratio of the foregrounds")
    if splits:
        axes.legend(frameon=False)
    figure.tight_layout()
    return _save(figure, out)


def plot_image_grid(
    rows: Sequence[tuple[str, Sequence[Image.Image]]], out: str | os.PathLike, *, cell_inches: float = 1.6
) -> Path:
    """A grid of images, one titled row per entry of `rows` (title, images)."""
    if not rows:
        raise ValueError("`rows` must hold at least one (title, images) row, got none.")
    columns = max(len(images) for _, images in rows) or 1
    figure = Figure(figsize=(cell_inches * columns + 1.8, cell_inches * len(rows)))
    for row, (title, images) in enumerate(rows):
        for column in range(columns):
            axes = figure.add_subplot(len(rows), columns, row * columns + column + 1)
            axes.set_xticks([])
            axes.set_yticks([])
            for spine in axes.spines.values():
                spine.set_visible(False)
            if column < len(images):
                axes.imshow(np.asarray(images[column].convert("RGB")))
            if column == 0:
                axes.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
    figure.subplots_adjust(left=1.7 / (cell_inches * columns + 1.8), right=0.99, top=0.98, bottom=0.02, wspace=0.05, hspace=0.08)
    return _save(figure, out)
