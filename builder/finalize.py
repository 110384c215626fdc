"""`recombinet finalize DIR`: turn a finished build folder into a release (idempotent).

1. Removes temp files left by killed writes, then checks every shard of `build.json` is finished (has its outcome file) and has its three
   Parquet files; refuses with the list of missing shards unless `allow_partial`, which
   deletes the Parquet files of unfinished shards (a rerun of the build redoes them) and
   records the missing shards. Parquet files under ``data/`` that belong to no shard of
   this build are an error.
2. Merges the outcome files into ``outcomes.jsonl`` (one line per source image, splits in
   release order, by `idx`).
3. Writes ``recombinet.json`` (`recombinet_hf.release.write_release_info`: release version,
   source, builder settings, backend versions, counts per split/config, outcome counts,
   class names, recombination configs, license; sha256 of every shard is added there).
4. Writes README.md: `recombinet_hf.release.write_minimal_card` (its YAML `configs` make
   the folder loadable), then, with ``card="full"`` (default) and the card package
   importable, `recombinet_card.render_card(folder)` over it (pictures included).

The output depends only on the folder's files, so finalizing twice gives the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import pyarrow.parquet as pq

from recombinet_hf._files import atomic_path
from recombinet_hf.config import RecombineConfig
from recombinet_hf.features import DATA_CONFIGS, DEFAULT_RECOMBINATION_CONFIGS, SPLITS
from recombinet_hf.release import write_minimal_card, write_release_info

from .manifest import manifest_shards, read_manifest
from .outcomes import STATUSES, count_outcomes
from .shards import OUTCOMES_DIR, ShardSpec, data_paths, outcome_path, read_json

__all__ = ["OUTCOMES_FILE", "MissingShardsError", "recombination_configs", "finalize"]

logger = logging.getLogger(__name__)

OUTCOMES_FILE = "outcomes.jsonl"
#: README modes: `full` = recombinet_card's card when installed (else minimal), `minimal`
#: = YAML metadata + a short text (fast), `none` = leave README.md alone.
CARD_MODES = ("full", "minimal", "none")
BUILDER_NAME = "recombinet_builder"


class MissingShardsError(RuntimeError):
    """Finalize was asked for a build whose shards are not all finished."""

    def __init__(self, folder: Path, missing: Sequence[ShardSpec], total: int) -> None:
        names = [spec.name for spec in missing]
        shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
        super().__init__(
            f"{folder}: {len(names)} of {total} shards are not finished: {shown}. Rerun `recombinet build` with the "
            "same options to finish them, or pass `--allow-partial` to release what is there."
        )
        self.missing = names


def recombination_configs(extra: Sequence[str] = ()) -> list[str]:
    """The default recombination configs plus `extra`, each checked and in its canonical name."""
    names: list[str] = []
    for name in [*DEFAULT_RECOMBINATION_CONFIGS, *extra]:
        try:
            canonical = RecombineConfig.from_name(name).name
        except ValueError as error:
            raise ValueError(f"`--recombination-config {name}`: {error}") from error
        if canonical not in names:
            names.append(canonical)
    return names


def _stray_parquet(folder: Path, shards: Sequence[ShardSpec]) -> list[str]:
    expected = {path for spec in shards for path in data_paths(folder, spec).values()}
    data = folder / "data"
    found = sorted(data.rglob("*.parquet")) if data.is_dir() else []
    return [path.relative_to(folder).as_posix() for path in found if path not in expected]


def _remove_temp_files(folder: Path) -> None:
    """Temp files of writes cut short by a kill (`*.tmp` next to shards and outcome files)."""
    for sub in ("data", OUTCOMES_DIR):
        if (folder / sub).is_dir():
            for path in (folder / sub).rglob("*.tmp"):
                path.unlink(missing_ok=True)
                logger.info("removed %s (left by an interrupted write)", path.relative_to(folder))


def _write_jsonl(path: Path, records: Sequence[dict]) -> None:
    with atomic_path(path) as temp, open(temp, "w", encoding="utf-8") as stream:
        for record in records:
            stream.write(json.dumps(record, sort_keys=True) + "\n")


def _distinct(values: list) -> list:
    unique: list = []
    for value in values:
        if value not in unique:
            unique.append(value)
    return unique


def _render_card(folder: Path, class_names: Sequence[str], configs: Sequence[str], license: dict, *, full: bool) -> str:
    """The minimal card first (its YAML `configs` make the folder loadable, which the full card
    reads for its pictures), then the full card when `recombinet_card` is installed."""
    write_minimal_card(folder, class_names, configs, **license)
    if not full:
        return "recombinet_hf.release.write_minimal_card"
    try:
        from recombinet_card import render_card
    except ImportError:
        return "recombinet_hf.release.write_minimal_card"
    render_card(folder)
    return "recombinet_card.render_card"


def finalize(
    folder: str | os.PathLike,
    *,
    allow_partial: bool = False,
    release_version: Optional[str] = None,
    extra_recombination_configs: Sequence[str] = (),
    card: str = "full",
) -> dict:
    """Finalize the build in `folder` (see the module docstring); returns the release info."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    shards = manifest_shards(manifest)
    stray = _stray_parquet(folder, shards)
    if stray:
        raise ValueError(
            f"{folder}/data holds Parquet files that are not shards of this build: {stray[:10]}"
            f"{' ...' if len(stray) > 10 else ''}. Remove them (they come from another build) and finalize again."
        )
    _remove_temp_files(folder)
    finished = [spec for spec in shards if outcome_path(folder, spec).is_file()]
    missing = [spec for spec in shards if spec not in finished]
    if missing and not allow_partial:
        raise MissingShardsError(folder, missing, len(shards))
    for spec in missing:
        for path in data_paths(folder, spec).values():
            if path.exists():
                path.unlink()
                logger.info("removed %s of unfinished shard %s", path.relative_to(folder), spec.name)
    for spec in finished:
        absent = [path.relative_to(folder).as_posix() for path in data_paths(folder, spec).values() if not path.is_file()]
        if absent:
            raise ValueError(
                f"Shard {spec.name} is marked finished ({outcome_path(folder, spec).relative_to(folder)}) but lacks "
                f"{absent}; delete its outcome file and rerun the build to redo it."
            )

    records: list[dict] = []
    backends: list[dict] = []
    per_split: dict[str, dict] = {}
    for split in SPLITS:
        split_shards = [spec for spec in finished if spec.split == split]
        if split not in manifest["splits"]:
            continue
        split_records: list[dict] = []
        rows = {config: 0 for config in DATA_CONFIGS}
        for spec in split_shards:
            report = read_json(outcome_path(folder, spec))
            if (report.get("start"), report.get("stop")) != (spec.start, spec.stop):
                raise ValueError(
                    f"{outcome_path(folder, spec)} covers positions [{report.get('start')}, {report.get('stop')}), "
                    f"but shard {spec.name} of this build covers [{spec.start}, {spec.stop}); delete it and rerun the build."
                )
            split_records.extend({"split": split, **outcome} for outcome in report["outcomes"])
            backends.append(report.get("backends", {}))
            for config, path in data_paths(folder, spec).items():
                rows[config] += pq.ParquetFile(path).metadata.num_rows
        split_records.sort(key=lambda record: record["idx"])
        counts = count_outcomes(split_records)
        if any(count != counts["kept"] for count in rows.values()):
            raise ValueError(
                f"Split {split}: the Parquet files hold {rows} rows but the outcome files count {counts['kept']} kept "
                "images; the folder was modified by hand. Delete the affected shards' outcome files and rerun the build."
            )
        per_split[split] = {
            "num_images": manifest["splits"][split]["num_images"],
            "num_shards": manifest["splits"][split]["num_shards"],
            "finished_shards": len(split_shards),
            "rows": rows,
            "outcomes": counts,
        }
        records.extend(split_records)
    _write_jsonl(folder / OUTCOMES_FILE, records)

    distinct_backends = _distinct(backends)
    configs = recombination_configs([*manifest.get("recombination_configs", []), *extra_recombination_configs])
    class_names = manifest["class_names"]
    info = {
        "release_version": release_version or manifest.get("release_version", "1.0.0"),
        "source": manifest["source"],
        "label_space": manifest["label_space"],
        "num_classes": len(class_names),
        "class_names": class_names,
        **manifest.get("license", {}),  # license, license_name, license_link (card metadata)
        "builder": {
            "name": BUILDER_NAME,
            "settings": manifest["settings"],
            "shard_layout": "contiguous ranges of whole batches of the key-sorted source (see recombinet_builder.shards)",
            "splits": {split: {k: v for k, v in facts.items()} for split, facts in manifest["splits"].items()},
        },
        "models": distinct_backends[0] if len(distinct_backends) == 1 else {"per_shard_variants": distinct_backends},
        "counts": {split: facts["rows"] for split, facts in per_split.items()},
        "outcomes": {
            split: {status: facts["outcomes"][status] for status in STATUSES} for split, facts in per_split.items()
        },
        "error_reasons": {split: facts["outcomes"]["errors_by_reason"] for split, facts in per_split.items()},
        "outcome_totals": count_outcomes(records),
        "splits": per_split,
        "recombination_configs": configs,
        "outcomes_file": OUTCOMES_FILE,
        "partial": bool(missing),
        "missing_shards": [spec.name for spec in missing],
    }
    write_release_info(folder, info)
    if card not in CARD_MODES:
        raise ValueError(f"`--card` must be one of {list(CARD_MODES)}; got {card!r}.")
    if card != "none":
        info["card_writer"] = _render_card(folder, class_names, configs, manifest.get("license", {}), full=card == "full")
    return info
