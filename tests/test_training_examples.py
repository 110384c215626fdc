"""The fine-tuning examples end to end, offline, on synthetic releases (tiny random models)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthetic import make_release
from test_training import PRESENT, make_sample_like_release

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sample_like(tmp_path_factory):
    return make_sample_like_release(tmp_path_factory.mktemp("sample_like"))


def test_trainer_example_vit_with_mixing_and_workers(release, tmp_path):
    result = example("train_trainer").main([
        "--release", str(release), "--config", "same-range-pt1.0", "--model", "vit-tiny", "--epochs", "2",
        "--batch-size", "6", "--mix", "both", "--num-workers", "2", "--persistent-workers",
        "--output-dir", str(tmp_path),
    ])
    assert result["eval_split"] == "validation" and result["num_labels"] == 3 and result["eval_samples"] == 12
    assert 0.0 <= result["eval_accuracy"] <= 1.0
    assert json.loads((tmp_path / "metrics.json").read_text())["model"] == "vit-tiny"


@pytest.mark.parametrize("labels, num_labels", [("compact", len(PRESENT)), ("full", 1000)])
def test_trainer_example_convnext_on_a_sample_like_release(sample_like, tmp_path, labels, num_labels):
    result = example("train_trainer").main([
        "--release", str(sample_like), "--config", "same-range-pt0.8", "--model", "convnext-tiny", "--epochs", "1",
        "--batch-size", "4", "--labels", labels, "--output-dir", str(tmp_path),
    ])
    assert result["num_labels"] == num_labels and result["eval_split"] == "train"  # the sample has no validation
    assert result["eval_samples"] == 2 * len(PRESENT)


def test_pytorch_example_streaming_single_process(release):
    result = example("train_pytorch").main([
        "--release", str(release), "--config", "same-range-pt1.0", "--model", "convnext-tiny", "--epochs", "2",
        "--batch-size", "4", "--streaming", "--num-workers", "2", "--mix", "cutmix",
    ])
    # 2 workers x 6 rows in batches of 4: 4 batches (two partial) and every row once per epoch
    assert result["world_size"] == 1 and [(h["steps"], h["samples"]) for h in result["history"]] == [(4, 12), (4, 12)]


def torchrun(release, tmp_path, *options):
    metrics = tmp_path / "metrics.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(EXAMPLES / "train_pytorch.py"), "--release", str(release), "--config", "same-range-pt1.0",
        "--model", "vit-tiny", "--epochs", "2", "--metrics", str(metrics), *options,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(metrics.read_text())
    assert result["world_size"] == 2 and all(0.0 <= h["accuracy"] <= 1.0 for h in result["history"])
    return result


def test_pytorch_example_under_torchrun(release, tmp_path):
    """Two gloo processes, DistributedSampler + set_epoch, persistent workers, MixUp/CutMix."""
    options = ["--batch-size", "3", "--num-workers", "2", "--persistent-workers", "--mix", "both"]
    result = torchrun(release, tmp_path, *options)
    assert [(h["steps"], h["samples"]) for h in result["history"]] == [(2, 12), (2, 12)]  # 12 images / 2 ranks / 3


def test_pytorch_example_streaming_uneven_ranks_under_torchrun(tmp_path):
    """9 rows in row groups of 5 and 4: the ranks get 5 and 4 rows; DDP's join covers the
    missing batch and every row is trained on once per epoch."""
    uneven = make_release(tmp_path / "uneven", per_class=3, splits=("train",), num_shards=2)
    result = torchrun(uneven, tmp_path, "--batch-size", "2", "--streaming", "--num-workers", "2")
    assert [h["samples"] for h in result["history"]] == [9, 9]
