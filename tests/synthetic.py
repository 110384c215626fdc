"""Small synthetic releases for tests: generated photos with a known object, written with the
real release writer (Parquet shards, README YAML, recombinet.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from recombinet_builder.rows import make_rows
from recombinet_hf.parquet_writer import shard_path, write_shard
from recombinet_hf.release import write_minimal_card, write_release_info

CLASS_NAMES = ["red disc", "green box", "blue bar"]
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230)]


def make_photo(width: int, height: int, label: int, fg_ratio: float, seed: int) -> tuple[Image.Image, np.ndarray]:
    """A textured background with one object of class `label` covering ~`fg_ratio` of it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx / width * 120 + 60, yy / height * 120 + 60, np.full_like(xx, 110.0)], axis=-1)
    base += rng.normal(0, 6, base.shape)
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    mask_image = Image.new("L", (width, height), 0)
    draw_mask = ImageDraw.Draw(mask_image)
    area = max(fg_ratio, 1e-4) * width * height
    aspect = (1.0, 1.0, 3.0)[label % 3]
    obj_w = min(width - 2, max(2, int(round(np.sqrt(area * aspect)))))
    obj_h = min(height - 2, max(2, int(round(area / obj_w))))
    left = int(rng.integers(0, width - obj_w + 1))
    top = int(rng.integers(0, height - obj_h + 1))
    box = (left, top, left + obj_w - 1, top + obj_h - 1)
    if label % 3 == 0:
        draw_mask.ellipse(box, fill=255)
    else:
        draw_mask.rectangle(box, fill=255)
    mask = np.asarray(mask_image) > 0
    pixels = np.asarray(image).copy()
    pixels[mask] = COLOURS[label % 3]
    return Image.fromarray(pixels), mask


def rows_for(key: str, idx: int, label: int, image: Image.Image, mask: np.ndarray) -> dict:
    """The foregrounds/backgrounds/masks rows of one source image, built by the builder's own
    `make_rows` (inpainting = the mean colour of the rest of the image)."""
    background = np.asarray(image).copy()
    background[mask] = np.asarray(image)[~mask].mean(axis=0).astype(np.uint8) if (~mask).any() else 128
    return make_rows(idx=idx, key=key, label=label, image=image, mask=mask, background=Image.fromarray(background), score=1.0)


def make_release(
    folder: Path,
    *,
    per_class: int = 4,
    class_names: Sequence[str] = CLASS_NAMES,
    fg_ratios: Optional[Sequence[float]] = None,
    splits: Sequence[str] = ("train", "validation"),
    size: tuple[int, int] = (96, 72),
    num_shards: int = 2,
    recombination_configs: Sequence[str] = ("same-range-pt0.8", "all-range-pt1.0"),
    info: Optional[dict] = None,
) -> Path:
    """Write a release of `per_class` images per class and split into `folder`.

    `fg_ratios` (one per image of a class, cycled) controls object sizes, e.g. for pruning tests.
    Returns the folder. Keys are `<split>_<label>_<n>`; idx is the position in sorted key order.
    """
    folder = Path(folder)
    fg_ratios = list(fg_ratios or [0.1, 0.2, 0.3, 0.5])
    for split_number, split in enumerate(splits):
        entries = []
        for label in range(len(class_names)):
            for n in range(per_class):
                entries.append((f"{split}_{label}_{n:04d}", label, fg_ratios[n % len(fg_ratios)]))
        entries.sort()
        tables: dict[str, list[dict]] = {"foregrounds": [], "backgrounds": [], "masks": []}
        for idx, (key, label, ratio) in enumerate(entries):
            image, mask = make_photo(*size, label, ratio, seed=split_number * 100_000 + idx)
            for config, row in rows_for(key, idx, label, image, mask).items():
                tables[config].append(row)
        for config, rows in tables.items():
            for shard in range(num_shards):
                part = rows[shard::num_shards]
                write_shard(shard_path(folder, config, split, shard, num_shards), config, part, class_names)
    write_release_info(folder, {"release_version": "0.0.1", **(info or {})})
    write_minimal_card(folder, class_names, recombination_configs)
    return folder
