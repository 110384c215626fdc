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
]
