"""Pixel work of recombination: resize, rotate, crop, soften and paste a foreground. No
randomness (every choice comes in `RecombineParams`) and no I/O."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageFilter

from .sampling import RecombineParams, foreground_pixel_size, place, placement_range


def alpha_coverage_of(foreground: Image.Image) -> float:
    """Mean alpha / 255 of an RGBA crop."""
    return float(np.asarray(foreground.getchannel("A"), dtype=np.float64).mean() / 255.0)


def resize_foreground(foreground: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize an RGBA crop (Pillow premultiplies alpha for RGBA, so edges keep their colour)."""
    if foreground.size == size:
        return foreground
    return foreground.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


def rotate_foreground(foreground: Image.Image, angle: float) -> Image.Image:
    """Rotate counter-clockwise by `angle` degrees, growing the canvas so nothing is cut."""
    if angle == 0:
        return foreground
    return foreground.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)


def crop_to_fit(foreground: Image.Image, canvas_size: tuple[int, int], crop: Sequence[float]) -> Image.Image:
    """Crop a foreground larger than the canvas down to it; `crop` (u, v) picks which part stays."""
    width, height = foreground.size
    keep_w, keep_h = min(width, canvas_size[0]), min(height, canvas_size[1])
    if (keep_w, keep_h) == (width, height):
        return foreground
    left = int(round(crop[0] * (width - keep_w)))
    top = int(round(crop[1] * (height - keep_h)))
    return foreground.crop((left, top, left + keep_w, top + keep_h))


def soften_edges(foreground: Image.Image, sigma: float) -> tuple[Image.Image, int]:
    """Blur the alpha edge with a Gaussian of `sigma` px (total alpha is kept). The crop is padded
    by 3 sigma first so the blur is not clipped; returns the image and the padding."""
    if sigma <= 0:
        return foreground, 0
    pad = int(math.ceil(3 * sigma))
    canvas = Image.new("RGBA", (foreground.width + 2 * pad, foreground.height + 2 * pad), (0, 0, 0, 0))
    canvas.paste(foreground, (pad, pad))
    alpha = canvas.getchannel("A")
    # The blurred alpha reaches pixels that were transparent, whose colour is meaningless: give
    # them the object's own nearby colour, a blur of premultiplied RGB divided by the blurred
    # alpha ("RGBa" round trip), so the edge fades object colour into the background, no halo.
    spread = canvas.convert("RGBa").filter(ImageFilter.GaussianBlur(radius=2 * sigma + 1)).convert("RGBA")
    opaque = alpha.point(lambda value: 255 if value == 255 else 0)
    softened = Image.composite(canvas, spread, opaque)
    softened.putalpha(alpha.filter(ImageFilter.GaussianBlur(radius=sigma)))
    return softened, pad


def nonant_range(canvas: int, extent: int, cell: int) -> tuple[float, float]:
    """Top-left coordinates keeping an object of `extent` px inside third `cell` (0-2) of an axis."""
    lo, hi = cell * canvas / 3, (cell + 1) * canvas / 3 - extent
    return (lo, hi) if lo <= hi else ((lo + hi) / 2, (lo + hi) / 2)


def paste_foreground(
    background: Image.Image,
    foreground: Image.Image,
    params: RecombineParams,
    *,
    rel_jut_out: float = 0.0,
) -> tuple[Image.Image, Image.Image]:
    """Composite an RGBA foreground crop onto an RGB background as `params` say.

    Returns the RGB image and the pasted alpha (mode L, aligned with the image). The
    foreground's opaque area is `params.target_area` of the canvas, unless it had to be cropped
    to fit or juts out.
    """
    canvas = background.convert("RGB") if background.mode != "RGB" else background.copy()
    size = foreground_pixel_size(params.target_area, canvas.size, foreground.size, alpha_coverage_of(foreground))
    foreground = rotate_foreground(resize_foreground(foreground, size), params.angle)
    foreground = crop_to_fit(foreground, canvas.size, params.crop)
    x_range = placement_range(canvas.size[0], foreground.size[0], rel_jut_out)
    y_range = placement_range(canvas.size[1], foreground.size[1], rel_jut_out)
    if params.nonant is not None:
        x_range = nonant_range(canvas.size[0], foreground.size[0], params.nonant % 3)
        y_range = nonant_range(canvas.size[1], foreground.size[1], params.nonant // 3)
    left, top = place(params.position[0], *x_range), place(params.position[1], *y_range)
    foreground, pad = soften_edges(foreground, params.sigma)
    alpha = foreground.getchannel("A")
    canvas.paste(foreground.convert("RGB"), (left - pad, top - pad), alpha)
    mask = Image.new("L", canvas.size, 0)
    mask.paste(alpha, (left - pad, top - pad))
    return canvas, mask


def scale_box(box: Sequence[float], source_size: Sequence[int], canvas_size: Sequence[int]) -> list[int]:
    """A box in source pixels mapped onto a canvas of another size (e.g. a resized original)."""
    sx, sy = canvas_size[0] / max(source_size[0], 1), canvas_size[1] / max(source_size[1], 1)
    return [round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)]


def fit_to_box(foreground: Image.Image, box: Sequence[int]) -> Image.Image:
    """The foreground crop resized to fill `box` (no-op when it already does)."""
    width, height = int(box[2]) - int(box[0]), int(box[3]) - int(box[1])
    if foreground.size == (width, height) or width < 1 or height < 1:
        return foreground
    return foreground.resize((width, height), Image.Resampling.BILINEAR)


def paste_at_box(background: Image.Image, foreground: Image.Image, box: Sequence[int]) -> Image.Image:
    """Put a foreground back where it was cut from (reconstructing its original image)."""
    canvas = background.convert("RGB") if background.mode != "RGB" else background.copy()
    foreground = fit_to_box(foreground, box)
    canvas.paste(foreground.convert("RGB"), (int(box[0]), int(box[1])), foreground.getchannel("A"))
    return canvas
