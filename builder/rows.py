"""One kept image -> its rows in the three data configs (pure; images pre-encoded).

* ``foregrounds``: RGBA crop of the source to the mask's box, alpha = mask·255 (WebP
  lossless, exact alpha), ``box`` [x0, y0, x1, y1] (x1, y1 exclusive), ``source_size``
  [w, h], ``fg_ratio`` = mask area / image area, ``alpha_coverage`` = mean alpha / 255 of
  the crop, ``score`` = the selected version's score.
* ``backgrounds``: the inpainted RGB image at source size (JPEG), ``fg_ratio``, ``source_size``.
* ``masks``: the mask at source size, L mode 0/255 (PNG), ``box``.

Images are encoded here with the release codecs (`recombinet_hf.parquet_writer.IMAGE_FORMATS`),
so the expensive encoding runs in the builder's worker threads, not in the writer.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from recombinet_hf.compositing import alpha_coverage_of
from recombinet_hf.images import encode_image
from recombinet_hf.parquet_writer import IMAGE_FORMATS

__all__ = ["mask_box", "foreground_rgba", "mask_image", "make_rows"]


def mask_box(mask: np.ndarray) -> list[int]:
    """[x0, y0, x1, y1] of the True pixels (x1, y1 exclusive); ValueError for an empty mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if not len(xs):
        raise ValueError("mask_box: the mask is empty.")
    return [int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1]


def foreground_rgba(image: Image.Image, mask: np.ndarray, box: list[int]) -> Image.Image:
    """RGBA crop of `image` to `box` with alpha = mask·255."""
    x0, y0, x1, y1 = box
    rgb = np.asarray(image.convert("RGB"))[y0:y1, x0:x1]
    alpha = np.asarray(mask, dtype=bool)[y0:y1, x0:x1].astype(np.uint8) * 255
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def mask_image(mask: np.ndarray) -> Image.Image:
    """The bool mask as an L image, 0/255."""
    return Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255, "L")


def _encode(config: str, image: Image.Image) -> bytes:
    return encode_image(image, IMAGE_FORMATS[config][1])


def make_rows(
    *, idx: int, key: str, label: int, image: Image.Image, mask: np.ndarray, background: Image.Image, score: float
) -> dict[str, dict]:
    """The foregrounds/backgrounds/masks rows of one kept image, keyed by config."""
    mask = np.asarray(mask, dtype=bool)
    width, height = image.size
    if mask.shape != (height, width):
        raise ValueError(f"make_rows({key!r}): mask shape {mask.shape} != image (height, width) {(height, width)}.")
    if background.size != image.size:
        raise ValueError(f"make_rows({key!r}): background size {background.size} != image size {image.size}.")
    box = mask_box(mask)
    crop = foreground_rgba(image, mask, box)
    fg_ratio = float(mask.mean())
    alpha_coverage = alpha_coverage_of(crop)
    common = {"idx": int(idx), "key": str(key), "label": int(label)}
    return {
        "foregrounds": {
            **common,
            "image": _encode("foregrounds", crop),
            "box": box,
            "source_size": [width, height],
            "fg_ratio": fg_ratio,
            "alpha_coverage": alpha_coverage,
            "score": float(score),
        },
        "backgrounds": {
            **common,
            "image": _encode("backgrounds", background.convert("RGB")),
            "fg_ratio": fg_ratio,
            "source_size": [width, height],
        },
        "masks": {**common, "mask": _encode("masks", mask_image(mask)), "box": box},
    }
