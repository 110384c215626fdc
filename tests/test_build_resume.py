"""Faults and scale: a build killed with SIGKILL and rerun equals an uninterrupted build;
2 torchrun ranks equal 1 process; another shard count gives the same rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder_helpers import assert_same_release, make_imagenet_folder, shard_hashes
from recombinet_builder.cli import main

TESTS = Path(__file__).parent
NUM_IMAGES = 6  # 2 classes x 2 train + 2 classes x 1 val
COMMON = ["--batch-size", "1", "--num-shards", "100", "--card", "minimal", "--no-progress", "--num-workers", "1"]
PLUGIN = ["--plugin", "slow_plugin", "--segment", "salient-slow"]


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID"):
        env.pop(name, None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory) -> Path:
    """The uninterrupted single-process build, one image per shard."""
    import slow_plugin  # noqa: F401  (registers salient-slow in this process)

    out = tmp_path_factory.mktemp("reference") / "release"
    assert main(["build", "--source", str(source), "--out", str(out), *COMMON, *PLUGIN]) == 0
    return out


def test_reference_layout(reference):
    outcomes = sorted((reference / "outcomes").glob("*.json"))
    assert [p.name for p in outcomes] == [f"train-{i:05d}-of-00004.json" for i in range(4)] + [
        f"validation-{i:05d}-of-00002.json" for i in range(2)
    ]
    assert len((reference / "outcomes.jsonl").read_text().splitlines()) == NUM_IMAGES
    info = json.loads((reference / "recombinet.json").read_text())
    assert info["splits"]["train"]["num_shards"] == 4 and info["splits"]["validation"]["num_shards"] == 2
    assert info["label_space"] == "imagenet-1k" and info["num_classes"] == 1000


def test_sigkill_midway_then_rerun_equals_uninterrupted(source, reference, tmp_path):
    out = tmp_path / "release"
    command = [sys.executable, "-m", "recombinet_builder", "build", "--source", str(source), "--out", str(out), *COMMON, *PLUGIN]
    process = subprocess.Popen(
        command, env=_env(RECOMBINET_TEST_SEGMENT_DELAY="1.5"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    try:
        while not list((out / "outcomes").glob("*.json")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no shard finished in time"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    finished = sorted(p.name for p in (out / "outcomes").glob("*.json"))
    assert 1 <= len(finished) < NUM_IMAGES
    first = out / "outcomes" / finished[0]
    first_mtime = first.stat().st_mtime_ns
    assert not (out / "recombinet.json").exists()

    # an unfinished shard's half-written parquet and a killed write's temp file
    (out / "data" / "foregrounds").mkdir(parents=True, exist_ok=True)
    (out / "data" / "foregrounds" / "validation-00001-of-00002.parquet").write_bytes(b"PAR1 half written")
    (out / "data" / "masks").mkdir(parents=True, exist_ok=True)
    (out / "data" / "masks" / "train-00003-of-00004.parquet.abc.tmp").write_bytes(b"junk")

    # finalize refuses while shards are missing, naming them
    assert main(["finalize", str(out), "--card", "none"]) == 2
    from recombinet_builder.finalize import MissingShardsError, finalize

    with pytest.raises(MissingShardsError, match="validation-00001-of-00002"):
        finalize(out, card="none")

    assert main(["build", "--source", str(source), "--out", str(out), *COMMON, *PLUGIN]) == 0
    assert first.stat().st_mtime_ns == first_mtime  # the finished shard was skipped
    assert not list(out.rglob("*.tmp"))
    assert shard_hashes(out) == shard_hashes(reference)
    assert (out / "outcomes.jsonl").read_text() == (reference / "outcomes.jsonl").read_text()
    assert (out / "recombinet.json").read_text() == (reference / "recombinet.json").read_text()
    assert_same_release(out, reference)


def test_torchrun_two_ranks_equals_one_process(source, reference, tmp_path):
    out = tmp_path / "release"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "recombinet_builder", "build", "--source", str(source), "--out", str(out), *COMMON, *PLUGIN,
    ]
    result = subprocess.run(command, env=_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 1/2" in result.stderr and "rank 0/2" in result.stderr
    reports = [json.loads(p.read_text()) for p in sorted((out / "outcomes").glob("*.json"))]
    assert sorted({r["rank"] for r in reports}) == [0, 1]  # round-robin over both ranks
    assert (out / "recombinet.json").is_file()  # rank 0 finalized after the barrier
    assert shard_hashes(out) == shard_hashes(reference)
    assert (out / "recombinet.json").read_text() == (reference / "recombinet.json").read_text()


def test_other_shard_and_rank_counts_give_the_same_rows(source, reference, tmp_path):
    out = tmp_path / "release"
    args = ["build", "--source", str(source), "--out", str(out), *PLUGIN, "--batch-size", "1", "--card", "none", "--no-progress"]
    # two ranks given on the command line, 3 shards per split (capped at 2 for validation)
    assert main([*args, "--num-shards", "3", "--shard-index", "1", "--num-ranks", "2"]) == 0
    assert not (out / "recombinet.json").exists()  # several ranks without a barrier: no auto-finalize
    assert main([*args, "--num-shards", "3", "--shard-index", "0", "--num-ranks", "2"]) == 0
    assert main(["finalize", str(out), "--card", "none"]) == 0
    assert sorted(p.name for p in (out / "data" / "masks").iterdir()) == [
        "train-00000-of-00003.parquet", "train-00001-of-00003.parquet", "train-00002-of-00003.parquet",
        "validation-00000-of-00002.parquet", "validation-00001-of-00002.parquet",
    ]
    assert_same_release(out, reference)
    # the same folder refuses another shard count, naming the setting
    with pytest.raises(ValueError, match="num_shards"):
        main(["-v", *args, "--num-shards", "2"])


def test_unknown_backend_fails_before_writing_anything(source, tmp_path):
    out = tmp_path / "release"
    with pytest.raises(ValueError, match=r"`--segment` 'salent'.*available: \[.*'salient'"):
        main(["-v", "build", "--source", str(source), "--out", str(out), "--segment", "salent"])
    with pytest.raises(ValueError, match="allowed: .*threshold"):
        main(["-v", "build", "--source", str(source), "--out", str(out), "--segment-option", "thresh=0.5"])
    assert not out.exists()
    assert main(["build", "--source", str(source), "--out", str(out), "--segment", "salent"]) == 2  # CLI: message, status 2
