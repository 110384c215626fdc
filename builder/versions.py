"""Mask versions: candidates -> up to 3 versions -> scores -> the one the release keeps.

The published recipe (ForAug), done by pure functions:

1. :func:`make_versions`: candidates with the same prompt are OR-ed into one version (all
   instances of the object the prompt found); versions are ordered by their prompt's
   position in the image's prompt list (the class prompt first, then the ancestors;
   prompt-free candidates keep the segmenter's order), ties by segmenter score; a version
   whose IoU with an earlier one exceeds `iou_threshold` (0.9) is merged into it (OR of
   the masks, best segmenter score); at most `max_versions` (3) are kept.
2. :func:`version_score`, the published score of version i of n::

       log p(class | fg on grey) + log(1 - p(class | background))
       + 2·log(1 - |fg_ratio - 0.1|) + 0.1·log(1 - i/(n+1))

   where the probabilities come from a classifier over the release's label space
   (any callable PIL RGB image -> probability vector; see `classifiers`): the object
   pasted on plain grey (128) at its place, and the inpainted background.
3. Without a classifier, :func:`fallback_score`: ``log(segmenter score)`` stands in for
   the two classifier terms (no extra inpainting per version is needed then)::

       log(segmenter score) + 2·log(1 - |fg_ratio - 0.1|) + 0.1·log(1 - i/(n+1))

4. :func:`select_version`: the highest score (the earliest version on ties).

Probabilities are clipped to [1e-6, 1 - 1e-6] (:data:`EPS`) before the logs, so a version
never scores -inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from .backends import Candidate

__all__ = [
    "EPS",
    "GREY",
    "Version",
    "mask_iou",
    "make_versions",
    "version_score",
    "fallback_score",
    "select_version",
    "grey_composite",
    "class_probability",
    "score_versions",
]

EPS = 1e-6
#: Plain grey of the "foreground on grey" image the classifier sees.
GREY = 128


@dataclass(frozen=True)
class Version:
    """One candidate object mask of an image.

    Attributes:
        mask: bool (height, width) array in source pixels.
        segmenter_score: best segmenter score among the candidates merged into it, in [0, 1].
        prompts: the prompts of those candidates.
    """

    mask: np.ndarray
    segmenter_score: float
    prompts: tuple[str, ...]

    @property
    def fg_ratio(self) -> float:
        """Object area / image area."""
        return float(self.mask.mean()) if self.mask.size else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _prompt_rank(prompt: str, prompts: Sequence[str]) -> int:
    return list(prompts).index(prompt) if prompt in prompts else len(prompts)


def make_versions(
    candidates: Sequence[Candidate],
    prompts: Sequence[str] = (),
    *,
    iou_threshold: float = 0.9,
    max_versions: int = 3,
) -> list[Version]:
    """Up to `max_versions` versions from one image's candidates (see the module docstring).

    Empty candidate masks are ignored; no non-empty candidate gives [].
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"`iou_threshold` must be in [0, 1]; got {iou_threshold!r}.")
    if max_versions < 1:
        raise ValueError(f"`max_versions` must be >= 1; got {max_versions!r}.")
    groups: dict[str, list[tuple[int, Candidate]]] = {}
    for order, candidate in enumerate(candidates):
        mask = np.asarray(candidate.mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"A candidate mask must be 2-D (height, width); got shape {mask.shape}.")
        if mask.any():
            groups.setdefault(candidate.prompt, []).append((order, Candidate(mask, float(candidate.score), candidate.prompt)))
    if not groups:
        return []
    shape = next(iter(groups.values()))[0][1].mask.shape
    if any(c.mask.shape != shape for group in groups.values() for _, c in group):
        raise ValueError(f"The candidates of one image have different mask shapes; expected {shape} for all.")

    ordered: list[tuple[tuple, Version]] = []
    for prompt, group in groups.items():
        mask = np.logical_or.reduce([c.mask for _, c in group])
        score = max(c.score for _, c in group)
        first = min(order for order, _ in group)
        # prompt position first; prompt-free / unknown prompts keep the segmenter's order
        sort_key = (_prompt_rank(prompt, prompts), -score, first)
        ordered.append((sort_key, Version(mask, score, (prompt,))))
    ordered.sort(key=lambda pair: pair[0])

    versions: list[Version] = []
    for _, version in ordered:
        for number, kept in enumerate(versions):
            if mask_iou(kept.mask, version.mask) > iou_threshold:
                versions[number] = Version(
                    np.logical_or(kept.mask, version.mask),
                    max(kept.segmenter_score, version.segmenter_score),
                    kept.prompts + version.prompts,
                )
                break
        else:
            versions.append(version)
    return versions[:max_versions]


def _log(p: float) -> float:
    return math.log(min(max(float(p), EPS), 1.0))


def _shared_terms(fg_ratio: float, index: int, count: int) -> float:
    if not 0 <= index < count:
        raise ValueError(f"version `index` must be in [0, {count}); got {index}.")
    return 2.0 * _log(1.0 - abs(fg_ratio - 0.1)) + 0.1 * _log(1.0 - index / (count + 1))


def version_score(p_foreground: float, p_background: float, fg_ratio: float, index: int, count: int) -> float:
    """The published score: log p_fg + log(1 - p_bg) + 2·log(1 - |fg_ratio - 0.1|) + 0.1·log(1 - i/(n+1))."""
    p_background = min(max(float(p_background), 0.0), 1.0 - EPS)
    return _log(p_foreground) + _log(1.0 - p_background) + _shared_terms(fg_ratio, index, count)


def fallback_score(segmenter_score: float, fg_ratio: float, index: int, count: int) -> float:
    """The score without a classifier: log(segmenter score) replaces the classifier terms."""
    return _log(segmenter_score) + _shared_terms(fg_ratio, index, count)


def select_version(scores: Sequence[float]) -> int:
    """Index of the best score (the earliest on ties); ValueError on an empty list."""
    if not len(scores):
        raise ValueError("select_version needs at least one score.")
    return int(np.argmax(np.asarray(scores, dtype=np.float64)))


def grey_composite(image: Image.Image, mask: np.ndarray, grey: int = GREY) -> Image.Image:
    """The object of `image` (RGB) where `mask` is True, plain grey elsewhere; same size."""
    rgb = np.asarray(image.convert("RGB"))
    return Image.fromarray(np.where(np.asarray(mask, dtype=bool)[..., None], rgb, np.uint8(grey)).astype(np.uint8))


def class_probability(
    classifier: Callable[[Image.Image], Sequence[float]], image: Image.Image, label: int, num_classes: int
) -> float:
    """p(label | image) from `classifier`, checking it returns `num_classes` probabilities."""
    probabilities = np.asarray(classifier(image), dtype=np.float64).reshape(-1)
    if probabilities.shape != (num_classes,):
        raise ValueError(
            f"The classifier returned {probabilities.shape[0]} values; the release's label space has {num_classes} classes."
        )
    return float(probabilities[label])


def score_versions(
    versions: Sequence[Version],
    *,
    image: Image.Image,
    label: int,
    num_classes: int,
    classifier: Optional[Callable[[Image.Image], Sequence[float]]],
    inpaint: Callable[[Version], Image.Image],
) -> tuple[list[float], dict[int, Image.Image]]:
    """Scores of all versions, and the backgrounds inpainted on the way (by version index).

    With a classifier each version is inpainted (`inpaint(version)`) to score its background;
    without one, the fallback score needs no inpainting and the dict is empty.
    """
    count = len(versions)
    scores, backgrounds = [], {}
    for index, version in enumerate(versions):
        if classifier is None:
            scores.append(fallback_score(version.segmenter_score, version.fg_ratio, index, count))
            continue
        p_fg = class_probability(classifier, grey_composite(image, version.mask), label, num_classes)
        backgrounds[index] = inpaint(version)
        p_bg = class_probability(classifier, backgrounds[index], label, num_classes)
        scores.append(version_score(p_fg, p_bg, version.fg_ratio, index, count))
    return scores, backgrounds
