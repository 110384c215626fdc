"""Offline checks of a card's YAML against the values the Hub accepts (`card_schema.json`)."""

from __future__ import annotations

import functools
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Optional

from huggingface_hub import DatasetCard

from recombinet_hf.config import RecombineConfig
from recombinet_hf.features import DATA_CONFIGS

SCHEMA_FILE = "card_schema.json"


class CardCheckError(ValueError):
    """A card's metadata is not what the Hub accepts; `problems` lists one line per field."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"Dataset card {where} failed its checks ({len(problems)} problem(s)):\n{lines}")


@functools.lru_cache(maxsize=1)
def load_card_schema() -> dict[str, Any]:
    """The allowed values, from the packaged `card_schema.json`."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_allowed(metadata: Mapping, key: str, schema: Mapping, problems: list[str]) -> None:
    allowed = schema[key]
    for value in _as_list(metadata.get(key)):
        if value not in allowed:
            problems.append(f"`{key}`: {value!r} is not an allowed value; allowed: {allowed}")


def _check_config_name(name: Any, problems: list[str]) -> None:
    if name in DATA_CONFIGS:
        return
    try:
        canonical = RecombineConfig.from_name(name).name
    except ValueError as error:
        problems.append(f"`configs`: config_name {name!r} is neither a data config {list(DATA_CONFIGS)} nor a valid recombination config: {error}")
        return
    if canonical != name:
        problems.append(f"`configs`: config_name {name!r} is not canonical; write {canonical!r}")


def _check_configs(metadata: Mapping, folder: Optional[Path], problems: list[str]) -> None:
    configs = metadata.get("configs") or []
    names = [entry.get("config_name") for entry in configs if isinstance(entry, Mapping)]
    if len(names) != len(configs):
        problems.append("`configs`: every entry must be a mapping with `config_name` and `data_files`")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"`configs`: duplicate config_name(s) {duplicates}")
    defaults = [entry.get("config_name") for entry in configs if isinstance(entry, Mapping) and entry.get("default")]
    if len(defaults) != 1:
        problems.append(f"`configs`: exactly one config must be `default: true`, got {defaults}")
    for entry in configs:
        if not isinstance(entry, Mapping):
            continue
        _check_config_name(entry.get("config_name"), problems)
        data_files = entry.get("data_files")
        if not data_files:
            problems.append(f"`configs`: {entry.get('config_name')!r} has no data_files")
            continue
        for item in _as_list(data_files):
            pattern = item.get("path") if isinstance(item, Mapping) else item
            for path in _as_list(pattern):
                if folder is not None and not any(folder.glob(path)):
                    problems.append(f"`configs`: {entry.get('config_name')!r} data_files {path!r} matches no file in {folder}")
    infos = _as_list(metadata.get("dataset_info"))
    info_names = [info.get("config_name") for info in infos if isinstance(info, Mapping)]
    missing = [name for name in names if name not in info_names]
    extra = [name for name in info_names if name not in names]
    if missing:
        problems.append(f"`dataset_info`: no features for config(s) {missing} (Image/ClassLabel types would be lost)")
    if extra:
        problems.append(f"`dataset_info`: entries for unknown config(s) {extra}")
    for info in infos:
        if isinstance(info, Mapping) and not info.get("features"):
            problems.append(f"`dataset_info`: {info.get('config_name')!r} has no `features`")


def validate_card_metadata(metadata: Mapping[str, Any], *, folder: Optional[str | os.PathLike] = None) -> list[str]:
    """Problems of a card's YAML metadata (empty when the card is fine).

    With `folder`, every `configs` data_files pattern must match a file in that folder.
    """
    schema = load_card_schema()
    problems: list[str] = []
    for key in schema["required"]:
        if metadata.get(key) in (None, "", [], {}):
            problems.append(f"`{key}` is required")
    for key in ("license", "task_categories", "task_ids", "size_categories", "annotations_creators"):
        _check_allowed(metadata, key, schema, problems)
    if "other" in _as_list(metadata.get("license")):
        for key in schema["license_other_requires"]:
            if not metadata.get(key):
                problems.append(f"`license: other` needs `{key}`")
        if metadata.get("license_name") and not re.match(schema["license_name_pattern"], str(metadata["license_name"])):
            problems.append(f"`license_name`: {metadata['license_name']!r} must match {schema['license_name_pattern']}")
        if metadata.get("license_link") and not re.match(schema["license_link_pattern"], str(metadata["license_link"])):
            problems.append(f"`license_link`: {metadata['license_link']!r} must match {schema['license_link_pattern']}")
    for value in _as_list(metadata.get("source_datasets")):
        if not re.match(schema["source_datasets_pattern"], str(value)):
            problems.append(f"`source_datasets`: {value!r} must match {schema['source_datasets_pattern']}")
    for tag in _as_list(metadata.get("tags")):
        if not re.match(schema["tag_pattern"], str(tag)):
            problems.append(f"`tags`: {tag!r} must match {schema['tag_pattern']}")
    pretty_name = metadata.get("pretty_name")
    if pretty_name and len(str(pretty_name)) > schema["pretty_name_max_length"]:
        problems.append(f"`pretty_name` is longer than {schema['pretty_name_max_length']} characters")
    fields = metadata.get("extra_gated_fields") or {}
    if not isinstance(fields, Mapping):
        problems.append("`extra_gated_fields` must be a mapping of label -> type")
    else:
        for label, kind in fields.items():
            kind_name = kind.get("type") if isinstance(kind, Mapping) else kind
            if kind_name not in schema["extra_gated_field_types"]:
                problems.append(f"`extra_gated_fields`: {label!r} has type {kind_name!r}; allowed: {schema['extra_gated_field_types']}")
    _check_configs(metadata, Path(folder) if folder is not None else None, problems)
    return problems


def check_card(path: str | os.PathLike) -> DatasetCard:
    """Load the card (a README.md or a release folder holding one) and check its metadata.

    Returns the loaded `DatasetCard`; raises `CardCheckError` listing every problem.
    """
    path = Path(path)
    readme = path / "README.md" if path.is_dir() else path
    card = DatasetCard.load(readme)
    problems = validate_card_metadata(card.data.to_dict(), folder=readme.parent)
    if problems:
        raise CardCheckError(str(readme), problems)
    return card
