"""The maths of recombination, pure functions of an explicit generator and metadata: no pixels,
no I/O, no global random state.

Everything here is resolution independent: sizes are fractions of the canvas area and
positions are fractions of the free range, so the same parameters replay on any canvas.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional, Union

import numpy as np

from ._validation import check_range
from .config import RecombineConfig

#: Smallest object area fraction used for sizing: a fg_ratio of 0 (empty mask) must not make
#: the foreground vanish or divide by zero.
MIN_AREA_FRACTION = 1e-4

# Independent sub-streams of one sample, so adding a draw to one never shifts another.
STREAM_CHOICE, STREAM_GEOMETRY, STREAM_TRANSFORM, STREAM_USER = range(4)


def sample_generators(seed: int, epoch: int, index: int, count: int = 4) -> list[np.random.Generator]:
    """`count` independent generators derived from (seed, epoch, index) only."""
    for name, value in (("seed", seed), ("epoch", epoch), ("idx", index)):
        if int(value) < 0:
            raise ValueError(f"`{name}` must be a non-negative integer to seed a sample, got {value!r}.")
    sequence = np.random.SeedSequence([int(seed), int(epoch), int(index)])
    return [np.random.default_rng(child) for child in sequence.spawn(count)]


def sample_bates(rng: np.random.Generator, n: int, size: Optional[int] = None) -> Union[float, np.ndarray]:
    """A Bates(n) draw in [0, 1]: the mean of n uniforms.

    n = 1 is uniform, larger n concentrates around 0.5, n = 0 is exactly 0.5, and negative n
    shifts Bates(|n|) by half a period so the mass sits at the edges.
    """
    shape = () if size is None else (size,)
    if n == 0:
        values = np.full(shape, 0.5)
    else:
        values = rng.random(shape + (abs(int(n)),)).mean(axis=-1)
        if n < 0:
            values = np.mod(values + 0.5, 1.0)
    return float(values) if size is None else values


def target_area_bounds(fg_ratio: float, bg_ratio: float, mode: str) -> tuple[float, float]:
    """The (lo, hi) object-area fractions of a size mode, from the two images' own fg_ratio."""
    fg_ratio = max(float(fg_ratio), MIN_AREA_FRACTION)
    bg_ratio = max(float(bg_ratio), MIN_AREA_FRACTION)
    if mode == "range":
        return min(fg_ratio, bg_ratio), max(fg_ratio, bg_ratio)
    if mode == "min":
        value = min(fg_ratio, bg_ratio)
    elif mode == "max":
        value = max(fg_ratio, bg_ratio)
    elif mode == "mean":
        value = (fg_ratio + bg_ratio) / 2
    else:
        raise ValueError(f"`fg_size_mode` must be one of ['range', 'min', 'max', 'mean'], got {mode!r}.")
    return value, value


def sample_target_area(
    rng: np.random.Generator, fg_ratio: float, bg_ratio: float, mode: str, jitter: float
) -> float:
    """Target object area as a fraction of the canvas: uniform in [lo * (1 - j), hi * (1 + j)]."""
    lo, hi = target_area_bounds(fg_ratio, bg_ratio, mode)
    return float(rng.uniform(lo * (1 - jitter), hi * (1 + jitter)))


def foreground_pixel_size(
    target_area: float, canvas_size: tuple[int, int], crop_size: tuple[int, int], alpha_coverage: float
) -> tuple[int, int]:
    """Width and height (>= 1 px) that give the crop's *opaque* area `target_area` of the canvas,
    keeping its aspect ratio. An empty alpha (coverage 0) is sized as if fully opaque."""
    canvas_w, canvas_h = canvas_size
    crop_w, crop_h = max(crop_size[0], 1), max(crop_size[1], 1)
    coverage = alpha_coverage if alpha_coverage > 0 else 1.0
    box_area = target_area * canvas_w * canvas_h / coverage
    scale = math.sqrt(box_area / (crop_w * crop_h))
    return max(1, round(crop_w * scale)), max(1, round(crop_h * scale))


def placement_range(canvas: int, extent: int, rel_jut_out: float) -> tuple[float, float]:
    """Allowed top-left coordinates along one axis; the object may leave the canvas by
    `rel_jut_out` of its extent. When it cannot fit, the range collapses to the centre."""
    lo = -rel_jut_out * extent
    hi = canvas - extent * (1 - rel_jut_out)
    if lo > hi:
        lo = hi = (lo + hi) / 2
    return lo, hi


def place(u: float, lo: float, hi: float) -> int:
    """Top-left pixel coordinate for a relative position u in [0, 1] of the range [lo, hi]."""
    return int(round(lo + u * (hi - lo)))


def schedule_probability(orig_img_prob: Union[float, str], epoch: int, num_epochs: Optional[int]) -> float:
    """Probability of returning the original image at `epoch` (0-based) of `num_epochs`.

    With t = epoch / (num_epochs - 1) (0 at the first epoch, 1 at the last; 0 when there is one
    epoch): `lin` is t, `revlin` is 1 - t, `cos` is 1 - cos(pi * t / 2) (slow start, 0 -> 1).
    """
    if not isinstance(orig_img_prob, str):
        return float(orig_img_prob)
    if num_epochs is None or int(num_epochs) < 1:
        raise ValueError(
            f"`orig_img_prob={orig_img_prob!r}` is a schedule over epochs: pass `num_epochs` (>= 1), got {num_epochs!r}."
        )
    check_range("epoch", epoch, 0, math.inf)
    t = min(epoch, num_epochs - 1) / (num_epochs - 1) if num_epochs > 1 else 0.0
    if orig_img_prob == "lin":
        return t
    if orig_img_prob == "revlin":
        return 1.0 - t
    if orig_img_prob == "cos":
        return 1.0 - math.cos(math.pi * t / 2)
    raise ValueError(f"`orig_img_prob` schedule must be one of ['lin', 'revlin', 'cos'], got {orig_img_prob!r}.")


@dataclass(frozen=True)
class RecombineParams:
    """Everything sampled for one output image; replaying them reproduces it exactly.

    Attributes:
        idx: the foreground row's `idx`.
        use_original: return the original image instead of a recombination.
        bg_idx: `idx` of the chosen background (None for originals).
        target_area: object area as a fraction of the canvas.
        angle: rotation in degrees, counter-clockwise.
        position: (u, v) in [0, 1]: place within the free range along x and y.
        crop: (u, v) in [0, 1]: which part of a foreground larger than the canvas is kept.
        sigma: Gaussian sigma (pixels) of the alpha edge; 0 = hard edge.
        background_transform: parameters of the background transform, if any.
        nonant: evaluation hook: the cell (0-8, row-major) of a 3x3 grid the object is placed
            in (its target area is then relative to the cell), or None for the whole canvas.
    """

    idx: int
    use_original: bool = False
    bg_idx: Optional[int] = None
    target_area: float = 0.0
    angle: float = 0.0
    position: tuple[float, float] = (0.5, 0.5)
    crop: tuple[float, float] = (0.5, 0.5)
    sigma: float = 0.0
    background_transform: dict = field(default_factory=dict)
    nonant: Optional[int] = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RecombineParams":
        data = dict(data)
        data["position"] = tuple(data.get("position", (0.5, 0.5)))
        data["crop"] = tuple(data.get("crop", (0.5, 0.5)))
        return cls(**data)


def sample_geometry(
    rng: np.random.Generator,
    config: RecombineConfig,
    *,
    fg_ratio: float,
    bg_ratio: float,
    train: bool = True,
    size_factor: float = 1.0,
    nonant: Optional[int] = None,
) -> dict:
    """Draw the geometric parameters of one paste (size, angle, position, crop, edge sigma).

    The evaluation hooks scale the target area by `size_factor` (size bias) and confine the
    object to grid cell `nonant` (centre bias; the area is then relative to the cell).
    """
    target_area = sample_target_area(rng, fg_ratio, bg_ratio, config.fg_size_mode, config.fg_scale_jitter)
    target_area *= size_factor / (9 if nonant is not None else 1)
    angle = float(rng.uniform(-config.rotation, config.rotation)) if config.rotation > 0 else 0.0
    position = tuple(float(v) for v in sample_bates(rng, config.fg_bates_n, size=2))
    crop = tuple(float(v) for v in rng.random(2)) if train else (0.5, 0.5)
    sigma = float(rng.uniform(0.1, 1.0) * config.mask_smoothing_sigma) if config.mask_smoothing_sigma > 0 else 0.0
    geometry = {"target_area": target_area, "angle": angle, "position": position, "crop": crop, "sigma": sigma}
    return geometry if nonant is None else {**geometry, "nonant": int(nonant)}
