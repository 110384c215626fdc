"""RecombiNet: foreground/background recombination datasets, recombined lazily at load time.

    >>> from recombinet_hf import load_dataset
    >>> ds = load_dataset("path/or/org-repo", "same-range-pt0.8", split="train", seed=0)
    >>> ds[0]  # {"image": PIL RGB, "label": int, "fg_key": str, "bg_key": str, "bg_label": int}
"""

from .config import RecombineConfig
from .features import FORMAT_VERSION, release_features
from .images import ImageDecodeError
from .loading import get_recombiner, load_dataset, set_epoch
from .recombine import Recombine
from .sampling import RecombineParams, sample_bates
from .transforms import CenterCrop, Compose, RandomHorizontalFlip, RandomResizedCrop, Resize

# Imported on first use (they import torch / transformers.Trainer): name -> submodule.
_LAZY = {
    "CutMix": "mixing",
    "MixCollator": "mixing",
    "MixUp": "mixing",
    "RandomChoice": "mixing",
    "soft_cross_entropy": "mixing",
    "RecombineIterableDataset": "streaming",
    "split_dataset_by_node": "streaming",
    "EpochCallback": "training",
    "ImageClassificationCollator": "training",
    "LabelSpace": "training",
    "RecombineTrainer": "training",
    "compute_accuracy": "training",
    "image_processor_for": "training",
    "load_original_images": "training",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT_VERSION",
    "CenterCrop",
    "Compose",
    "ImageDecodeError",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Recombine",
    "RecombineConfig",
    "RecombineParams",
    "Resize",
    "get_recombiner",
    "load_dataset",
    "release_features",
    "sample_bates",
    "set_epoch",
    *sorted(_LAZY),
]
