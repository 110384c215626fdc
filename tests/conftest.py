"""Test setup: offline Hub, a private datasets cache, and small synthetic releases."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import make_release  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _private_datasets_cache(tmp_path_factory):
    """Keep `datasets`' Arrow cache out of the user's home and fresh for every run."""
    import datasets

    cache = tmp_path_factory.mktemp("hf_datasets_cache")
    previous = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = Path(cache)
    yield
    datasets.config.HF_DATASETS_CACHE = previous


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> Path:
    """3 classes x 4 images in train and validation, 96x72 photos, 2 shards per config."""
    return make_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="session")
def big_release(tmp_path_factory) -> Path:
    """Larger canvases (256x192) for pixel-accurate size and rotation checks."""
    return make_release(
        tmp_path_factory.mktemp("big_release"), per_class=4, size=(256, 192), fg_ratios=[0.05, 0.1, 0.15, 0.2],
        splits=("train",), num_shards=1,
    )


@pytest.fixture
def one_torch_thread():
    """Tiny models train faster (and steadier on a shared 2-core machine) on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
