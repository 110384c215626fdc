"""The small interfaces every builder backend implements, and their registries.

A segmenter turns images (plus text prompts) into candidate object masks; an
inpainter fills a masked region of an image. The builder owns everything else
(sharding, selection, writing), so a backend only has to do its one job.
Heavy dependencies are imported inside the backends, never here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Candidate:
    """One candidate object mask for one image.

    Attributes:
        mask: boolean array of shape (height, width) in source pixels.
        score: the backend's confidence in [0, 1] (detection x mask quality).
        prompt: the text prompt that produced it ("" for prompt-free backends).
    """

    mask: np.ndarray
    score: float
    prompt: str = ""


@runtime_checkable
class Segmenter(Protocol):
    """Finds the labelled object in images.

    `segment` takes a batch of RGB images and, per image, the list of text
    prompts for its class; it returns, per image, a list of candidates (empty
    when nothing was detected). Backends batch internally and use the GPU
    when one is present.
    """

    name: str
    #: what was run, for `recombinet.json`: model ids, revisions, file hashes.
    version: dict

    def segment(
        self, images: Sequence[Image.Image], prompts: Sequence[Sequence[str]]
    ) -> list[list[Candidate]]: ...


@runtime_checkable
class Inpainter(Protocol):
    """Removes the object: fills `mask` (bool, True = remove) in `image` (RGB)."""

    name: str
    version: dict

    def inpaint(self, image: Image.Image, mask: np.ndarray) -> Image.Image: ...


def check_options(backend: str, options: dict, cls: type) -> None:
    """Raise a ValueError naming unknown `options` of backend `cls` (its keyword-only arguments)."""
    allowed = [
        name
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown option(s) {unknown} for the `{backend}` backend; allowed: {allowed}.")


@dataclass
class BackendRegistry:
    """Name -> factory table, so the CLI can list and pick backends by name."""

    kind: str
    factories: dict[str, Callable[..., object]] = field(default_factory=dict)

    def register(self, name: str):
        def decorator(factory):
            self.factories[name] = factory
            return factory

        return decorator

    def create(self, name: str, **options):
        if name not in self.factories:
            raise ValueError(
                f"Unknown {self.kind} backend `{name}`; available: {sorted(self.factories)}."
            )
        return self.factories[name](**options)


SEGMENTERS = BackendRegistry("segment")
INPAINTERS = BackendRegistry("inpaint")
