"""Preview pictures of a release: stored foregrounds/backgrounds and recombined samples.

A release can hold millions of rows; loading it with `datasets` to draw a few thumbnails would
convert every shard into an Arrow cache. So the preview first cuts a small *preview release*
out of the shards with pyarrow (the picked foregrounds, their own backgrounds, and a sample of
other backgrounds of the split), in a temporary folder with its own cache, and draws it through
`recombinet_hf.load_dataset` exactly as users load a release.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard
from PIL import Image

import recombinet_hf
from recombinet_hf.features import DATA_CONFIGS
from recombinet_hf.release import release_card_data, write_release_info

from .checks import class_names
from .plots import plot_image_grid

#: Recombination configs of the card's preview grid: same-class, any-class, any-class + rotation.
PREVIEW_CONFIGS: tuple[str, ...] = ("same-range-pt1.0", "all-range-pt1.0", "all-range-pt1.0-rot30")
PREVIEW_COLUMNS = 6
#: Backgrounds of the preview pool: up to this many per picked class, plus this many spread over the split.
POOL_PER_CLASS = 8
POOL_SPREAD = 32


def on_checkerboard(image: Image.Image, square: int = 8) -> Image.Image:
    """An RGBA image over a grey checkerboard, so transparency shows."""
    rgba = image.convert("RGBA")
    width, height = rgba.size
    yy, xx = np.mgrid[0:height, 0:width]
    board = np.where(((yy // square + xx // square) % 2)[..., None] == 0, 200, 235).astype(np.uint8)
    background = Image.fromarray(np.repeat(board, 3, axis=-1), "RGB").convert("RGBA")
    return Image.alpha_composite(background, rgba).convert("RGB")


def pick_rows(labels: Sequence[int], count: int) -> list[int]:
    """`count` row numbers: the first row of classes spread evenly over the labels present,
    then (with fewer classes than `count`) the next rows in order. Sorted."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return []
    classes, first = np.unique(labels, return_index=True)
    spread = np.unique(np.round(np.linspace(0, len(classes) - 1, min(count, len(classes)))).astype(int))
    chosen = [int(first[i]) for i in spread]
    rest = [row for row in range(len(labels)) if row not in set(chosen)]
    return sorted(chosen + rest[: count - len(chosen)])


def _shards(folder: Path, config: str, split: str) -> list[Path]:
    shards = sorted((folder / "data" / config).glob(f"{split}-*.parquet"))
    if not shards:
        available = sorted({path.name.split("-")[0] for path in (folder / "data" / config).glob("*.parquet")})
        raise ValueError(f"Unknown split {split!r} for {folder}; available splits: {available}.")
    return shards


def _column(shards: Sequence[Path], name: str) -> np.ndarray:
    return np.concatenate([pq.read_table(path, columns=[name]).column(name).to_numpy(zero_copy_only=False) for path in shards])


def _take(shards: Sequence[Path], rows: Sequence[int]) -> pa.Table:
    """Rows (positions over the concatenated shards, ascending) read one row group at a time."""
    wanted, parts, offset = sorted(set(int(row) for row in rows)), [], 0
    for path in shards:
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            size = parquet.metadata.row_group(group).num_rows
            local = [row - offset for row in wanted if offset <= row < offset + size]
            if local:
                parts.append(parquet.read_row_group(group).take(local))
            offset += size
    return pa.concat_tables(parts)


@dataclass
class PreviewRelease:
    """A small release cut out of a big one, for drawing (see the module docstring)."""

    folder: Path
    cache_dir: Path
    split: str
    num_backgrounds: int
    num_split_backgrounds: int

    def load(self, name: str, **kwargs):
        """`recombinet_hf.load_dataset` of the preview release, with its own Arrow cache."""
        if name not in DATA_CONFIGS:
            kwargs.setdefault("min_backgrounds_per_class", 1)  # the pool is a sample: no fallback warnings
        return recombinet_hf.load_dataset(self.folder, name, split=self.split, cache_dir=str(self.cache_dir), **kwargs)


def cut_preview_release(folder: str | os.PathLike, target: str | os.PathLike, *, split: str, columns: int) -> PreviewRelease:
    """Write the preview release of `folder`'s `split` into `target` (picked foregrounds first)."""
    folder, target = Path(folder), Path(target)
    fg_shards, bg_shards = _shards(folder, "foregrounds", split), _shards(folder, "backgrounds", split)
    picked = pick_rows(_column(fg_shards, "label"), columns)
    foregrounds = _take(fg_shards, picked)
    bg_keys, bg_labels = _column(bg_shards, "key"), _column(bg_shards, "label")
    position = {key: row for row, key in enumerate(bg_keys)}
    pool = {position[key] for key in foregrounds.column("key").to_pylist() if key in position}
    for label in set(foregrounds.column("label").to_pylist()):
        pool.update(np.flatnonzero(bg_labels == label)[:POOL_PER_CLASS].tolist())
    pool.update(np.round(np.linspace(0, len(bg_keys) - 1, min(POOL_SPREAD, len(bg_keys)))).astype(int).tolist())
    backgrounds = _take(bg_shards, sorted(pool))
    for config, table in (("foregrounds", foregrounds), ("backgrounds", backgrounds)):
        path = target / "data" / config / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    card_data = release_card_data(target, class_names(folder), ())
    keep = {"foregrounds", "backgrounds"}
    card_data.configs = [entry for entry in card_data.configs if entry["config_name"] in keep]
    card_data.dataset_info = [entry for entry in card_data.dataset_info if entry["config_name"] in keep]
    DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\nPreview sample of {folder}.\n").save(target / "README.md")
    write_release_info(target, {"release_version": "preview"})
    return PreviewRelease(target, target / ".cache", split, len(pool), len(bg_keys))


def preview_rows(
    folder: str | os.PathLike,
    configs: Sequence[str] = PREVIEW_CONFIGS,
    *,
    split: str = "train",
    columns: int = PREVIEW_COLUMNS,
    seed: int = 0,
    epochs: Sequence[int] = (0,),
) -> list[tuple[str, list[Image.Image]]]:
    """(title, images) rows: picked foregrounds and their own backgrounds, then each config's
    recombinations of the same foregrounds for each of `epochs`."""
    with tempfile.TemporaryDirectory(prefix="recombinet-preview-") as temp:
        preview = cut_preview_release(folder, temp, split=split, columns=columns)
        foregrounds, backgrounds = preview.load("foregrounds"), preview.load("backgrounds")
        own = {key: row for row, key in enumerate(backgrounds["key"])}
        rows = [
            ("foregrounds", [on_checkerboard(row["image"]) for row in foregrounds]),
            ("backgrounds", [backgrounds[own[row["key"]]]["image"] for row in foregrounds if row["key"] in own]),
        ]
        for config in configs:
            for epoch in epochs:
                dataset = preview.load(config, seed=seed, epoch=epoch)
                title = config if len(epochs) == 1 else f"{config}\nepoch {epoch}"
                rows.append((title, [dataset[row]["image"] for row in range(len(dataset))]))
        return rows


def write_preview(
    folder: str | os.PathLike,
    config: str,
    out: Optional[str | os.PathLike] = None,
    split: str = "train",
    *,
    seed: int = 0,
    columns: int = PREVIEW_COLUMNS,
) -> Path:
    """Draw recombinations of `config` (epochs 0 and 1: the same foregrounds, new draws) under
    their foregrounds and own backgrounds; write a PNG and return its path.

    `out` defaults to `<folder>/images/preview-<config>.png`. Backgrounds are drawn from a
    sample of the split (see the module docstring), so the draws illustrate the config rather
    than reproduce the full release's sample for each `idx`.
    """
    folder = Path(folder)
    name = recombinet_hf.RecombineConfig.from_name(config).name
    out = Path(out) if out is not None else folder / "images" / f"preview-{name}.png"
    return plot_image_grid(preview_rows(folder, (name,), split=split, columns=columns, seed=seed, epochs=(0, 1)), out)
