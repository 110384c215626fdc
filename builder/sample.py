"""The `sample` source: a few real, labelled photos from pinned registry wheels.

* `sample_images()`: the 20 ImageNet validation-style photos that foolbox ships
  as ``foolbox/data/imagenet_NN_<imagenet class index>.jpg`` (foolbox 3.3.4).
* `quokka()`: imgaug's quokka photo with the animal's hand-drawn outline
  polygon from ``quokka_annotations.json`` (imgaug 0.4.0), rasterised to a
  boolean mask; a real ground truth for segmenter tests.

The files are taken straight out of the wheels (see `registry_assets`); foolbox
and imgaug are never imported or installed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .registry_assets import extract_member, wheel_members

__all__ = ["SampleImage", "sample_images", "quokka", "QUOKKA_WHEEL", "SAMPLE_WHEEL"]

#: Pinned wheel holding the ImageNet sample photos.
SAMPLE_WHEEL = "foolbox"
#: Pinned wheel holding the quokka photo and its annotations.
QUOKKA_WHEEL = "imgaug"

_IMAGENET_MEMBER = re.compile(r"^foolbox/data/(imagenet_(\d+)_(\d+))\.jpg$")


@dataclass(frozen=True)
class SampleImage:
    """One sample photo.

    Attributes:
        key: file stem, e.g. ``"imagenet_00_243"``.
        label: ImageNet-1k class index (0..999) from the file name.
        path: the extracted JPEG in the recombinet cache.
    """

    key: str
    label: int
    path: Path

    def open(self) -> Image.Image:
        """The photo as a PIL RGB image."""
        with Image.open(self.path) as image:
            return image.convert("RGB")


def sample_images() -> list[SampleImage]:
    """The foolbox ImageNet sample photos, sorted by key (20 of them)."""
    samples = []
    for member in wheel_members(SAMPLE_WHEEL):
        match = _IMAGENET_MEMBER.match(member)
        if match is None:
            continue
        key, label = match.group(1), int(match.group(3))
        samples.append(SampleImage(key=key, label=label, path=extract_member(SAMPLE_WHEEL, member)))
    if not samples:
        raise RuntimeError(
            f"The pinned `{SAMPLE_WHEEL}` wheel holds no foolbox/data/imagenet_NN_<label>.jpg files; "
            "the pin in registry_assets.PINNED_WHEELS does not match what sample.py expects."
        )
    return sorted(samples, key=lambda sample: sample.key)


def sample_folder() -> Path:
    """The folder of the extracted sample photos (files named `<key>.jpg`), e.g. as `source=` of
    `recombinet_hf.load_dataset` for original images."""
    return Path(sample_images()[0].path).parent


def _polygon_mask(size: tuple[int, int], points: list[tuple[float, float]]) -> np.ndarray:
    """Rasterise a polygon (pixel x, y) into a bool mask of PIL `size` (width, height)."""
    canvas = Image.new("L", size, 0)
    ImageDraw.Draw(canvas).polygon(points, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def quokka() -> tuple[Image.Image, np.ndarray]:
    """imgaug's quokka photo (PIL RGB, 960x643) and its ground-truth mask (bool, H x W).

    The mask is the single polygon of ``quokka_annotations.json`` (keys
    ``polygons[0].keypoints[*].x/y`` in pixels), filled with PIL ImageDraw.
    """
    image_path = extract_member(QUOKKA_WHEEL, "imgaug/quokka.jpg")
    annotations_path = extract_member(QUOKKA_WHEEL, "imgaug/quokka_annotations.json")
    with Image.open(image_path) as handle:
        image = handle.convert("RGB")
    annotations = json.loads(annotations_path.read_text(encoding="utf-8"))
    try:
        keypoints = annotations["polygons"][0]["keypoints"]
        points = [(float(point["x"]), float(point["y"])) for point in keypoints]
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise RuntimeError(
            f"{annotations_path}: expected `polygons[0].keypoints` as a list of {{x, y}} points "
            f"({type(error).__name__}: {error})."
        ) from error
    if len(points) < 3:
        raise RuntimeError(f"{annotations_path}: the quokka polygon has {len(points)} points; need >= 3.")
    return image, _polygon_mask(image.size, points)
