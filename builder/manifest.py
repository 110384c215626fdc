"""`build.json`: what a build folder is being built from and with, shared by every rank.

The first rank to start writes it; every later start (another rank, a restart, the finalize
step) reads it. A start whose source or settings would give other rows than the folder
already holds is refused with the differing fields, so shards of two different builds are
never mixed. The source's location is not compared (the same source may be mounted
elsewhere on another node): its content is, through a fingerprint of each split's sorted
keys and labels. `release_version` and `recombination_configs` only affect the metadata
and may change between runs (the latest wins).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from recombinet_hf.images import MAX_IMAGE_PIXELS

from .shards import DEFAULT_SHARD_SIZE, ShardSpec, num_shards_for, plan_shards, read_json, write_json_atomic
from .sources import Source, source_fingerprint

__all__ = [
    "MANIFEST_FILE",
    "BuildSettings",
    "make_manifest",
    "manifest_differences",
    "check_manifest",
    "write_or_check_manifest",
    "read_manifest",
    "manifest_shards",
]

MANIFEST_FILE = "build.json"
MANIFEST_VERSION = 1
#: Manifest fields that decide the rows; any difference refuses to mix builds.
COMPARED_FIELDS = ("label_space", "class_names", "splits", "settings")


@dataclass(frozen=True)
class BuildSettings:
    """The options that decide a build's rows (recorded in `build.json` and `recombinet.json`).

    Attributes:
        segment, segment_options: segmenter backend name and its options (`SEGMENTERS`).
        inpaint, inpaint_options: inpainter backend name and its options (`INPAINTERS`).
        classifier: `--classifier` spec for version scoring (see `classifiers`), None = fallback score.
        batch_size: images per segmenter call; shards are whole batches.
        num_shards: shards per split (capped at the number of batches); None = ceil(n / shard_size).
        shard_size: images per shard when `num_shards` is None.
        dilation_radius: mask dilation before inpainting in pixels; None = `inpaint.default_dilation_radius`.
        iou_threshold, max_versions: version merging (see `versions`).
        max_pixels: images whose header declares more pixels end as ``too_large``.
        limit: build only the first `limit` images of each split (key order); None = all.
        splits: release splits to build; None = every split the source has.
    """

    segment: str = "salient"
    segment_options: dict = field(default_factory=dict)
    inpaint: str = "telea"
    inpaint_options: dict = field(default_factory=dict)
    classifier: Optional[str] = None
    batch_size: int = 8
    num_shards: Optional[int] = None
    shard_size: int = DEFAULT_SHARD_SIZE
    dilation_radius: Optional[int] = None
    iou_threshold: float = 0.9
    max_versions: int = 3
    max_pixels: int = MAX_IMAGE_PIXELS
    limit: Optional[int] = None
    splits: Optional[tuple[str, ...]] = None

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["splits"] = list(self.splits) if self.splits is not None else None
        return data


def make_manifest(
    source: Source,
    settings: BuildSettings,
    *,
    release_version: str = "1.0.0",
    recombination_configs: Sequence[str] = (),
) -> dict:
    """The manifest of building `source` (already limited to the built splits) with `settings`."""
    splits = {}
    for split, items in source.splits.items():
        if not items:
            continue
        splits[split] = {
            "num_images": len(items),
            "num_shards": num_shards_for(
                len(items), batch_size=settings.batch_size, num_shards=settings.num_shards, shard_size=settings.shard_size
            ),
            "fingerprint": source_fingerprint(items),
        }
    return {
        "manifest_version": MANIFEST_VERSION,
        "source": source.description,
        "label_space": source.label_space,
        "class_names": list(source.class_names),
        "license": dict(source.license),
        "splits": splits,
        "settings": settings.to_json(),
        "release_version": release_version,
        "recombination_configs": list(recombination_configs),
    }


def manifest_differences(old: dict, new: dict) -> list[str]:
    """Human-readable differences of the compared fields (empty when compatible)."""
    differences = []
    for name in COMPARED_FIELDS:
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            for key in sorted(set(before) | set(after)):
                if before.get(key) != after.get(key):
                    differences.append(f"{name}.{key}: {before.get(key)!r} -> {after.get(key)!r}")
        elif name == "class_names":
            differences.append(f"class_names: {len(before or [])} names -> {len(after or [])} names (or other names)")
        else:
            differences.append(f"{name}: {before!r} -> {after!r}")
    return differences


def check_manifest(folder: str | os.PathLike, manifest: dict) -> None:
    """ValueError listing the differences when `folder` holds a build of other source
    content or settings (nothing to check when it has no `build.json` yet)."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return
    differences = manifest_differences(read_json(path), json.loads(json.dumps(manifest)))
    if differences:
        raise ValueError(
            f"{folder} already holds a build with other source content or settings:\n  "
            + "\n  ".join(differences)
            + "\nRerun with the same options to resume it, or build into a new `--out` folder."
        )


def write_or_check_manifest(folder: str | os.PathLike, manifest: dict) -> dict:
    """Write `build.json` into `folder`, or check the existing one is the same build (see
    `check_manifest`); metadata-only fields are updated. Returns the manifest in force."""
    manifest = json.loads(json.dumps(manifest))  # as stored (tuples -> lists)
    check_manifest(folder, manifest)
    path = Path(folder) / MANIFEST_FILE
    if path.is_file():
        old = read_json(path)
        if all(old.get(key) == manifest.get(key) for key in manifest):
            return old
    write_json_atomic(path, manifest)
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict:
    """The `build.json` of a build folder; FileNotFoundError if there is none."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {MANIFEST_FILE}: it is not a build folder (start one with `recombinet build`).")
    manifest = read_json(path)
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise ValueError(f"{path} has manifest_version {manifest.get('manifest_version')!r}; this builder reads {MANIFEST_VERSION}.")
    return manifest


def manifest_shards(manifest: dict) -> list[ShardSpec]:
    """Every shard of the build described by `manifest`."""
    sizes = {split: (facts["num_images"], facts["num_shards"]) for split, facts in manifest["splits"].items()}
    return plan_shards(sizes, manifest["settings"]["batch_size"])


def manifest_settings(manifest: dict) -> BuildSettings:
    """The BuildSettings recorded in a manifest."""
    data: dict[str, Any] = dict(manifest["settings"])
    if data.get("splits") is not None:
        data["splits"] = tuple(data["splits"])
    return BuildSettings(**data)
