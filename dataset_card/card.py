"""Render the dataset card of a release: `DatasetCardData` + the packaged Jinja template.

`render_card(folder)` writes `README.md` (YAML metadata + text) and the pictures it shows
(`images/preview.png`, `images/fg_ratio.png`), then checks the metadata offline.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Sequence

from huggingface_hub import DatasetCard, DatasetCardData

from recombinet_hf._files import atomic_path
from recombinet_hf.config import BACKGROUND_COMBINATIONS, SIZE_MODES, RecombineConfig
from recombinet_hf.features import COLUMN_DOCS, DATA_CONFIGS, DEFAULT_RECOMBINATION_CONFIGS, release_features
from recombinet_hf.pool import MIN_BACKGROUNDS_PER_CLASS
from recombinet_hf.release import read_release_info, release_card_data

from .checks import class_names, read_columns, release_shards
from .plots import plot_fg_ratio_histogram, plot_image_grid
from .preview import PREVIEW_CONFIGS, preview_rows
from .schema import CardCheckError, validate_card_metadata
from .statistics import ReleaseStatistics, release_statistics, size_category
from .terms import IMAGENET_LICENSE_NAME, SourceTerms, source_terms

TEMPLATE = "dataset_card.md"
PREVIEW_IMAGE = "images/preview.png"
FG_RATIO_IMAGE = "images/fg_ratio.png"
#: Placeholder repo id in the loading examples when the card is rendered before a push.
REPO_PLACEHOLDER = "ORG/NAME"

CITATION = """@article{nauen2025foraug,
  title   = {ForAug: Recombining Foregrounds and Backgrounds to Improve Vision Transformer Training with Bias Mitigation},
  author  = {Nauen, Tobias Christian and Moser, Brian and Raue, Federico and Frolov, Stanislav and Dengel, Andreas},
  journal = {arXiv preprint arXiv:2503.09399},
  year    = {2025},
  url     = {https://arxiv.org/abs/2503.09399}
}"""

#: Outcome columns first in the card, in this order (others follow, sorted).
OUTCOME_ORDER = ("kept", "no_detection", "error")
TAGS = ["recombinet", "foraug", "fornet", "data-augmentation", "foreground-segmentation", "inpainting"]
#: recombinet.json keys not shown in the card's build table (shown elsewhere or too long).
_HIDDEN_INFO_KEYS = {
    "shards", "outcomes", "error_reasons", "outcome_totals", "outcomes_file", "counts", "splits", "class_names",
    "recombination_configs", "license", "license_name", "license_link", "gated", "pretty_name", "repo_id",
    "partial", "missing_shards",
}


def template_path() -> Path:
    """The packaged card template."""
    return Path(str(resources.files(__package__).joinpath("templates", TEMPLATE)))


def recombination_configs(folder: str | os.PathLike, info: dict) -> list[str]:
    """The recombination configs a release lists: those of its current README plus
    `recombinet.json` `recombination_configs`, canonical and deduplicated (defaults if none)."""
    names: list[str] = []
    readme = Path(folder) / "README.md"
    if readme.is_file():
        for entry in DatasetCard.load(readme).data.to_dict().get("configs") or []:
            if entry.get("config_name") not in DATA_CONFIGS:
                names.append(entry["config_name"])
    names += list(info.get("recombination_configs") or [])
    result: list[str] = []
    for name in names or DEFAULT_RECOMBINATION_CONFIGS:
        canonical = RecombineConfig.from_name(name).name
        if canonical not in result:
            result.append(canonical)
    return result


def _source_datasets(terms: SourceTerms, info: dict) -> Optional[list[str]]:
    if terms.license_name == IMAGENET_LICENSE_NAME:
        return ["extended|imagenet-1k"]
    source = info.get("source")
    repo = source.get("repo_id") if isinstance(source, dict) else None
    if isinstance(source, str) and source.startswith("hf:"):
        repo = source[3:]
    return [f"extended|{repo}"] if repo else None


def build_card_data(
    folder: str | os.PathLike,
    info: dict,
    statistics: ReleaseStatistics,
    names: Sequence[str],
    terms: SourceTerms,
    configs: Optional[Sequence[str]] = None,
) -> DatasetCardData:
    """The card's YAML: Hub metadata, terms, and `configs`/`dataset_info` for every config
    (recombination `configs` default to `recombination_configs(folder, info)`)."""
    pretty_name = info.get("pretty_name") or f"RecombiNet: {terms.source}"[:100]
    return release_card_data(
        folder,
        names,
        recombination_configs(folder, info) if configs is None else configs,
        pretty_name=pretty_name,
        task_categories=["image-classification"],
        task_ids=["multi-class-image-classification"],
        size_categories=[size_category(statistics.num_examples)],
        annotations_creators=["machine-generated"],
        source_datasets=_source_datasets(terms, info),
        tags=list(TAGS),
        **terms.card_fields(),
    )


def _column_rows(names: Sequence[str]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for config in DATA_CONFIGS:
        for column, feature in release_features(config, names).items():
            kind = type(feature).__name__
            if kind == "List":
                kind = f"list[{feature.feature.dtype}; {feature.length}]"
            elif kind == "Value":
                kind = feature.dtype
            row = rows.setdefault(column, {"name": column, "type": kind, "doc": COLUMN_DOCS.get(column, ""), "configs": []})
            row["configs"].append(config)
    return list(rows.values())


def _pruning_rows(statistics: ReleaseStatistics) -> list[dict[str, Any]]:
    splits = list(statistics.pruning)
    if not splits:
        return []
    thresholds = [row.pt for row in statistics.pruning[splits[0]]]
    return [
        {"pt": f"{pt:.1f}", "cells": [statistics.pruning[split][number] for split in splits]}
        for number, pt in enumerate(thresholds)
    ]


def _fg_ratio_rows(statistics: ReleaseStatistics) -> list[dict[str, Any]]:
    splits = list(statistics.fg_ratio)
    if not splits:
        return []
    edges = statistics.fg_ratio[splits[0]].edges
    return [
        {
            "range": f"[{edges[i]:.2f}, {edges[i + 1]:.2f}{']' if i == len(edges) - 2 else ')'}",
            "counts": [statistics.fg_ratio[split].counts[i] for split in splits],
        }
        for i in range(len(edges) - 1)
    ]


def _build_settings(info: dict) -> list[tuple[str, str]]:
    """`recombinet.json` as (dotted key, JSON value) rows, one level of nesting flattened
    (`builder.settings`, `models.segmenter`, ...), long values shortened."""
    rows = []
    for key in sorted(info):
        if key in _HIDDEN_INFO_KEYS:
            continue
        value = info[key]
        items = sorted(value.items()) if isinstance(value, dict) and value else [(None, value)]
        for sub, item in items:
            if key == "builder" and sub == "splits":
                continue
            text = json.dumps(item, sort_keys=True, ensure_ascii=False).replace("|", "\\|").replace("`", "'")
            rows.append((f"{key}.{sub}" if sub else key, text if len(text) <= 200 else text[:197] + "..."))
    return rows


def _error_reasons(info: dict) -> list[tuple[str, str, int]]:
    reasons = info.get("error_reasons") or {}
    if not isinstance(reasons, dict):
        return []
    return [
        (split, reason, int(count))
        for split, per in reasons.items() if isinstance(per, dict)
        for reason, count in sorted(per.items())
    ]


def card_context(
    folder: Path,
    info: dict,
    statistics: ReleaseStatistics,
    names: Sequence[str],
    terms: SourceTerms,
    repo_id: str,
    configs: Sequence[str],
) -> dict[str, Any]:
    """The template's variables (besides the card data's own fields)."""
    outcome_names = [name for name in OUTCOME_ORDER if any(name in per for per in statistics.outcomes.values())]
    for per in statistics.outcomes.values():
        outcome_names += [name for name in sorted(per) if name not in outcome_names]
    shards = release_shards(folder)
    return {
        "repo_id": repo_id,
        "release_version": info.get("release_version", "unversioned"),
        "num_classes": len(names),
        "terms": terms,
        "preview_configs": list(PREVIEW_CONFIGS),
        "recombination_configs": list(configs),
        "backgrounds": [f"`{value}`" for value in BACKGROUND_COMBINATIONS],
        "size_modes": [f"`{value}`" for value in SIZE_MODES],
        "columns": _column_rows(names),
        "splits": statistics.splits,
        "counts": statistics.counts,
        "outcomes": statistics.outcomes,
        "outcome_names": outcome_names,
        "class_spread": statistics.class_spread,
        "fg_ratio_splits": list(statistics.fg_ratio),
        "fg_ratio_rows": _fg_ratio_rows(statistics),
        "pruning_splits": list(statistics.pruning),
        "pruning_rows": _pruning_rows(statistics),
        "min_backgrounds": MIN_BACKGROUNDS_PER_CLASS,
        "build_settings": _build_settings(info),
        "error_reasons": _error_reasons(info),
        "partial": bool(info.get("partial")),
        "missing_shards": list(info.get("missing_shards") or []),
        "num_shards": len(shards),
        "data_mib": sum(path.stat().st_size for path in shards) / 2**20,
        "citation": CITATION,
    }


def release_summary(folder: str | os.PathLike) -> tuple[dict, list[str], ReleaseStatistics, SourceTerms]:
    """(recombinet.json, class names, statistics, terms) of the release in `folder`."""
    info = read_release_info(folder)
    names = class_names(folder)
    statistics = release_statistics(
        read_columns(folder), len(names), outcomes=info.get("outcomes"), min_per_class=MIN_BACKGROUNDS_PER_CLASS
    )
    return info, names, statistics, source_terms(info)


def write_card_images(folder: str | os.PathLike, statistics: ReleaseStatistics, *, split: Optional[str] = None) -> list[Path]:
    """Draw `images/preview.png` (from `split`, default the first split) and `images/fg_ratio.png`."""
    folder = Path(folder)
    split = split or statistics.splits[0]
    preview = plot_image_grid(preview_rows(folder, PREVIEW_CONFIGS, split=split), folder / PREVIEW_IMAGE)
    return [preview, plot_fg_ratio_histogram(statistics.fg_ratio, folder / FG_RATIO_IMAGE)]


def render_card(folder: str | os.PathLike, *, repo_id: Optional[str] = None, images: bool = True) -> Path:
    """Write the dataset card `README.md` of the release in `folder` (and its pictures).

    Args:
        folder: a built release (shards under `data/`, `recombinet.json`).
        repo_id: the Hub id shown in the loading examples (default: `recombinet.json` `repo_id`,
            else the placeholder `ORG/NAME`).
        images: also draw `images/preview.png` and `images/fg_ratio.png` (the card shows them).

    Returns the path of `README.md`. Raises `CardCheckError` if the metadata is not what the
    Hub accepts (checked offline against `card_schema.json`).
    """
    folder = Path(folder)
    info, names, statistics, terms = release_summary(folder)
    configs = recombination_configs(folder, info)
    card_data = build_card_data(folder, info, statistics, names, terms, configs)
    repo_id = repo_id or info.get("repo_id") or REPO_PLACEHOLDER
    context = card_context(folder, info, statistics, names, terms, repo_id, configs)
    card = DatasetCard.from_template(card_data, template_path=str(template_path()), **context)
    card = DatasetCard(re.sub(r"\n{3,}", "\n\n", str(card)))  # template blocks leave blank runs
    problems = validate_card_metadata(card.data.to_dict(), folder=folder)
    if problems:
        raise CardCheckError(str(folder / "README.md"), problems)
    if images:
        write_card_images(folder, statistics)
    target = folder / "README.md"
    with atomic_path(target) as temp:
        card.save(temp)
    return target
