"""Classifiers for version scoring: any callable PIL RGB image -> probabilities over the
release's label space.

`--classifier` specs (:func:`load_classifier`):

* ``none`` (default): no classifier; versions get the fallback score (see `versions`).
* ``hf:MODEL_ID_OR_DIR``: a `transformers` image-classification model (softmax of its
  logits), with its PIL image processor (no torchvision). Its number of labels must equal
  the release's number of classes and be in the same order (e.g. an ImageNet-1k model for
  an ImageNet source).
* ``MODULE:FACTORY``: ``FACTORY(class_names=[...], device="cpu"|"cuda:N")`` from an
  importable module returns the callable. If the returned object has a ``version``
  attribute (a dict), it is recorded in ``recombinet.json``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np
from PIL import Image

__all__ = ["Classifier", "HFImageClassifier", "load_classifier", "classifier_version"]


class Classifier(Protocol):
    """PIL RGB image -> 1-D array of probabilities over the label space."""

    def __call__(self, image: Image.Image) -> Sequence[float]: ...


class HFImageClassifier:
    """A `transformers` image classifier; returns the softmax of its logits.

    Args:
        model: Hub id or local directory with the model and its image processor.
        revision: Hub revision, None for the default branch.
        device: torch device string; default ``cuda`` when available, else ``cpu``.
    """

    name = "hf-image-classifier"

    def __init__(self, model: str, *, revision: Optional[str] = None, device: Optional[str] = None) -> None:
        import torch
        import transformers
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self._torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.processor = AutoImageProcessor.from_pretrained(model, revision=revision, backend="pil")
        self.model = AutoModelForImageClassification.from_pretrained(model, revision=revision).to(self.device).eval()
        self.num_labels = int(self.model.config.num_labels)
        self.version = {
            "backend": self.name,
            "model": str(model),
            "revision": revision,
            "num_labels": self.num_labels,
            "transformers": transformers.__version__,
        }

    def __call__(self, image: Image.Image) -> np.ndarray:
        inputs = self.processor(images=[image.convert("RGB")], return_tensors="pt")
        with self._torch.inference_mode():
            logits = self.model(pixel_values=inputs["pixel_values"].to(self.device)).logits
        return logits.float().softmax(-1)[0].cpu().numpy()


def load_classifier(spec: Optional[str], *, class_names: Sequence[str], device: str = "cpu") -> Optional[Callable]:
    """The classifier named by a `--classifier` spec (see the module docstring); None for ``none``."""
    if spec is None or spec == "none":
        return None
    if spec.startswith("hf:"):
        classifier = HFImageClassifier(spec[3:], device=device)
        if classifier.num_labels != len(class_names):
            raise ValueError(
                f"`--classifier {spec}` has {classifier.num_labels} labels, but the release's label space has "
                f"{len(class_names)} classes; use a classifier over the same classes in the same order."
            )
        return classifier
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"`--classifier` must be `none`, `hf:MODEL_ID_OR_DIR` or `MODULE:FACTORY`; got {spec!r}."
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"`--classifier {spec}`: cannot import {attribute!r} from {module_name!r}: {error}") from error
    return factory(class_names=list(class_names), device=device)


def classifier_version(spec: Optional[str], classifier: Any) -> Optional[dict]:
    """What `recombinet.json` records about the classifier (None without one)."""
    if classifier is None:
        return None
    version = getattr(classifier, "version", None)
    return {"spec": spec, **(dict(version) if isinstance(version, dict) else {"object": type(classifier).__qualname__})}
