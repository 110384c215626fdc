"""`ShardBuilder` with fake backends: per-image faults stay per image, threads change
nothing, a backend that fails on everything stops the build without marking the shard."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from builder_helpers import read_release
from recombinet_builder.backends import Candidate
from recombinet_builder.manifest import BuildSettings
from recombinet_builder.pipeline import Backends, ShardBuilder, run_build
from recombinet_builder.shards import is_finished, plan_split
from recombinet_builder.sources import Source, SourceItem

CLASSES = ["a", "b"]


def _png(width: int, height: int, value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _source(widths) -> Source:
    items = [SourceItem(key=f"k{i}", label=i % 2, ref=_png(w, 20, 10 * i)) for i, w in enumerate(widths)]
    return Source(
        kind="test", description={"kind": "test"}, class_names=CLASSES, label_space="source",
        splits={"train": items}, _reader=lambda split, item: item.ref, _prompts=lambda label: [CLASSES[label]],
    )


class BoxSegmenter:
    """The centre box of every image; raises for images `poison` pixels wide."""

    name = "box"
    version = {"backend": "box"}

    def __init__(self, poison: int = -1) -> None:
        self.poison = poison
        self.calls: list[int] = []

    def segment(self, images, prompts):
        self.calls.append(len(images))
        if any(image.width == self.poison for image in images):
            raise RuntimeError("poisoned width")
        out = []
        for image, image_prompts in zip(images, prompts):
            mask = np.zeros((image.height, image.width), bool)
            mask[5:15, 5 : image.width - 5] = True
            out.append([Candidate(mask, 0.8, image_prompts[0])])
        return out


class FlatInpainter:
    """Fills with one colour; raises for images `fail_width` pixels wide (0: for every image)."""

    name = "flat"
    version = {"backend": "flat"}

    def __init__(self, fail_width: int = -1) -> None:
        self.fail_width = fail_width

    def inpaint(self, image, mask):
        if self.fail_width in (0, image.width):
            raise RuntimeError("inpainter exploded")
        return Image.new("RGB", image.size, (1, 2, 3))


def _build(tmp_path, widths, *, segmenter=None, inpainter=None, num_workers=0, batch_size=4):
    source = _source(widths)
    settings = BuildSettings(segment="box", inpaint="flat", batch_size=batch_size, num_shards=1)
    backends = Backends(segmenter or BoxSegmenter(), inpainter or FlatInpainter())
    builder = ShardBuilder(source, settings, backends, tmp_path, num_workers=num_workers)
    [spec] = plan_split("train", len(widths), 1, batch_size)
    return builder, spec


def test_per_image_faults_stay_per_image(tmp_path):
    segmenter = BoxSegmenter(poison=31)
    builder, spec = _build(tmp_path, [30, 31, 32, 33, 34], segmenter=segmenter, inpainter=FlatInpainter(fail_width=33))
    report = builder.build_shard(spec)
    statuses = {o["key"]: (o["status"], o.get("reason")) for o in report["outcomes"]}
    assert statuses == {
        "k0": ("kept", None), "k1": ("error", "segment_error"), "k2": ("kept", None),
        "k3": ("error", "inpaint_error"), "k4": ("kept", None),
    }
    assert segmenter.calls == [4, 1, 1, 1, 1, 1]  # the failing batch retried image by image
    rows = read_release(tmp_path)
    assert sorted(rows[("foregrounds", "train")]) == ["k0", "k2", "k4"]
    assert np.abs(rows[("backgrounds", "train")]["k2"]["image"].astype(int) - [1, 2, 3]).max() <= 2  # JPEG
    assert is_finished(tmp_path, spec)
    assert json.loads((tmp_path / "outcomes" / f"{spec.name}.json").read_text())["counts"]["error"] == 2


def test_threads_change_nothing(tmp_path):
    serial, spec = _build(tmp_path / "serial", [30, 40, 50, 60, 70, 80], num_workers=0, batch_size=2)
    threaded, _ = _build(tmp_path / "threaded", [30, 40, 50, 60, 70, 80], num_workers=3, batch_size=2)
    assert serial.build_shard(spec)["outcomes"] == threaded.build_shard(spec)["outcomes"]
    assert (tmp_path / "serial" / "data" / "foregrounds" / "train-00000-of-00001.parquet").read_bytes() == (
        tmp_path / "threaded" / "data" / "foregrounds" / "train-00000-of-00001.parquet"
    ).read_bytes()


def test_a_backend_failing_on_every_image_stops_without_finishing(tmp_path):
    builder, spec = _build(tmp_path, [30, 31, 32, 33], inpainter=FlatInpainter(fail_width=0))
    with pytest.raises(RuntimeError, match="setup problem"):
        builder.build_shard(spec)
    assert not is_finished(tmp_path, spec)


def test_run_build_with_given_backends_and_limit(tmp_path):
    source = _source([30, 31, 32, 33, 34])
    settings = BuildSettings(segment="salient", inpaint="telea", batch_size=2, num_shards=2, limit=3)
    report = run_build(source, settings, tmp_path, backends=Backends(BoxSegmenter(), FlatInpainter()), progress=False)
    assert report.shards_built == ["train-00000-of-00002", "train-00001-of-00002"] and report.images == 3
    assert report.counts["kept"] == 3
    again = run_build(source, settings, tmp_path, backends=Backends(BoxSegmenter(), FlatInpainter()), progress=False)
    assert again.shards_skipped == 2 and again.shards_built == []


def test_finalize_partial_build(tmp_path):
    from recombinet_builder.finalize import MissingShardsError, finalize
    from recombinet_builder.shards import RankInfo

    source = _source([30, 31, 32, 33, 34, 35])
    settings = BuildSettings(segment="salient", inpaint="telea", batch_size=2, num_shards=3)
    backends = Backends(BoxSegmenter(), FlatInpainter())
    run_build(source, settings, tmp_path, rank=RankInfo(0, 2, "cli"), backends=backends, progress=False)
    (tmp_path / "data" / "masks" / "train-00001-of-00003.parquet").write_bytes(b"half")  # the other rank, killed
    with pytest.raises(MissingShardsError, match=r"1 of 3 shards are not finished: train-00001-of-00003\."):
        finalize(tmp_path, card="none")
    info = finalize(tmp_path, allow_partial=True, release_version="0.9.0", card="minimal")
    assert info["partial"] and info["missing_shards"] == ["train-00001-of-00003"]
    assert info["release_version"] == "0.9.0" and info["outcomes"]["train"]["kept"] == 4
    assert not (tmp_path / "data" / "masks" / "train-00001-of-00003.parquet").exists()
    stored = json.loads((tmp_path / "recombinet.json").read_text())
    assert sorted(stored["shards"]) == sorted(
        f"data/{config}/train-0000{i}-of-00003.parquet" for config in ("foregrounds", "backgrounds", "masks") for i in (0, 2)
    )
    (tmp_path / "data" / "masks" / "stray-00000-of-00001.parquet").write_bytes(b"x")
    with pytest.raises(ValueError, match="not shards of this build"):
        finalize(tmp_path, allow_partial=True, card="none")
