"""Built-in geometric transforms for backgrounds (and pasted images), with no torchvision.

Each transform splits sampling from application, like torchvision v2: `make_params(rng, size)`
draws from an explicit generator and returns a plain dict; `apply(image, params)` is
deterministic. `__call__(image, rng)` does both. Parameters are recorded in
`RecombineParams.background_transform` and replay exactly.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from ._validation import check_range

Size = Union[int, tuple[int, int]]


def _size_pair(size: Size, name: str = "size") -> tuple[int, int]:
    """(width, height) from an int (square) or a (height, width) pair as in torchvision."""
    if isinstance(size, int):
        pair = (size, size)
    else:
        height, width = size
        pair = (int(width), int(height))
    if min(pair) < 1:
        raise ValueError(f"`{name}` must be positive, got {size!r}.")
    return pair


class GeometricTransform:
    """Base class: `__call__(image, rng)` = `apply(image, make_params(rng, image.size))`."""

    def make_params(self, rng: np.random.Generator, image_size: tuple[int, int]) -> dict:
        return {}

    def apply(self, image: Image.Image, params: dict, *, is_mask: bool = False) -> Image.Image:
        raise NotImplementedError

    def __call__(self, image: Image.Image, rng: Optional[np.random.Generator] = None) -> Image.Image:
        if rng is None:
            raise ValueError(f"{type(self).__name__} needs an explicit `rng` (numpy Generator).")
        return self.apply(image, self.make_params(rng, image.size))


class RandomResizedCrop(GeometricTransform):
    """Crop a random area fraction in `scale` with aspect ratio in `ratio`, resize to `size`.

    Same sampling as torchvision's RandomResizedCrop (10 tries, then a centre crop).
    """

    def __init__(
        self,
        size: Size,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> None:
        self.size = _size_pair(size)
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"`scale` must satisfy 0 < lo <= hi <= 1, got {scale!r}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"`ratio` must satisfy 0 < lo <= hi, got {ratio!r}.")
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def make_params(self, rng: np.random.Generator, image_size: tuple[int, int]) -> dict:
        width, height = image_size
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return {"box": [left, top, left + w, top + h]}
        aspect_in = width / height
        if aspect_in < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif aspect_in > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        left, top = (width - w) // 2, (height - h) // 2
        return {"box": [left, top, left + w, top + h]}

    def apply(self, image: Image.Image, params: dict, *, is_mask: bool = False) -> Image.Image:
        resample = Image.Resampling.BILINEAR
        return image.resize(self.size, resample, box=tuple(params["box"]))


class Resize(GeometricTransform):
    """Resize to `size` (an int resizes the shorter side, keeping the aspect ratio)."""

    def __init__(self, size: Size) -> None:
        self.size = size
        _size_pair(size)

    def apply(self, image: Image.Image, params: dict, *, is_mask: bool = False) -> Image.Image:
        if isinstance(self.size, int):
            width, height = image.size
            scale = self.size / min(width, height)
            target = (max(1, round(width * scale)), max(1, round(height * scale)))
        else:
            target = _size_pair(self.size)
        return image.resize(target, Image.Resampling.BILINEAR)


class CenterCrop(GeometricTransform):
    """Crop the centre `size` (padding with zeros when the image is smaller)."""

    def __init__(self, size: Size) -> None:
        self.size = _size_pair(size)

    def apply(self, image: Image.Image, params: dict, *, is_mask: bool = False) -> Image.Image:
        width, height = image.size
        left = (width - self.size[0]) // 2
        top = (height - self.size[1]) // 2
        return image.crop((left, top, left + self.size[0], top + self.size[1]))


class RandomHorizontalFlip(GeometricTransform):
    """Mirror left-right with probability `p`."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_range("p", p, 0.0, 1.0)

    def make_params(self, rng: np.random.Generator, image_size: tuple[int, int]) -> dict:
        return {"flip": bool(rng.random() < self.p)}

    def apply(self, image: Image.Image, params: dict, *, is_mask: bool = False) -> Image.Image:
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if params.get("flip") else image


class Compose(GeometricTransform):
    """Several transforms in order; params are a list, one dict per transform."""

    def __init__(self, transforms: Sequence[GeometricTransform]) -> None:
        for transform in transforms:
            if not isinstance(transform, GeometricTransform):
                raise TypeError(
                    f"Compose takes recombinet_hf.transforms transforms, got {type(transform).__name__}."
                )
        self.transforms = list(transforms)

    def make_params(self, rng: np.random.Generator, image_size: tuple[int, int]) -> dict:
        # Sizes change along the chain, so params are drawn while applying (see `sample_and_apply`).
        raise NotImplementedError("Compose draws its params in `sample_and_apply`.")

    def apply(self, image: Image.Image, params: dict, *, is_mask: bool = False) -> Image.Image:
        for transform, own in zip(self.transforms, params["steps"]):
            image = transform.apply(image, own, is_mask=is_mask)
        return image

    def __call__(self, image: Image.Image, rng: Optional[np.random.Generator] = None) -> Image.Image:
        return sample_and_apply(self, image, rng)[0]


def sample_and_apply(
    transform: GeometricTransform, image: Image.Image, rng: Optional[np.random.Generator]
) -> tuple[Image.Image, dict]:
    """Draw params (through a whole Compose chain) and apply them; returns image and params."""
    if rng is None:
        raise ValueError(f"{type(transform).__name__} needs an explicit `rng` (numpy Generator).")
    if isinstance(transform, Compose):
        steps = []
        for step in transform.transforms:
            image, params = sample_and_apply(step, image, rng)
            steps.append(params)
        return image, {"steps": steps}
    params = transform.make_params(rng, image.size)
    return transform.apply(image, params), params
