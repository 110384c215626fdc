"""Release metadata: `recombinet.json` and the README YAML (`configs` + `dataset_info`) that
make a folder a Hub dataset repo, and reading them back (local folder or Hub id)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from datasets.info import DatasetInfo
from huggingface_hub import DatasetCard, DatasetCardData

from ._files import atomic_path, sha256_file
from .features import DATA_CONFIGS, FORMAT_VERSION, SPLITS, SUPPORTED_FORMAT_VERSIONS, release_features

RELEASE_INFO_FILE = "recombinet.json"


def present_splits(folder: str | os.PathLike, config: str = "foregrounds") -> list[str]:
    """Splits that have at least one shard of `config` in the folder, in release order."""
    data = Path(folder) / "data" / config
    return [split for split in SPLITS if any(data.glob(f"{split}-*.parquet"))]


def configs_metadata(
    splits: Sequence[str], class_names: Sequence[str], recombination_configs: Sequence[str]
) -> tuple[list[dict], list[dict]]:
    """The YAML `configs` and `dataset_info` lists: data configs and recombination configs
    (which list the `foregrounds` shards, so plain `datasets.load_dataset` can browse them)."""
    configs, infos = [], []
    for name in [*DATA_CONFIGS, *recombination_configs]:
        source = name if name in DATA_CONFIGS else "foregrounds"
        data_files = [{"split": split, "path": f"data/{source}/{split}-*.parquet"} for split in splits]
        entry: dict[str, Any] = {"config_name": name, "data_files": data_files}
        if name == "foregrounds":
            entry["default"] = True
        configs.append(entry)
        info = DatasetInfo(features=release_features(source, class_names), config_name=name)
        infos.append(info._to_yaml_dict())
    return configs, infos


def release_card_data(
    folder: str | os.PathLike, class_names: Sequence[str], recombination_configs: Sequence[str], **card_fields: Any
) -> DatasetCardData:
    """`DatasetCardData` with the Hub-readable `configs` and `dataset_info` of the release in `folder`."""
    configs, infos = configs_metadata(present_splits(folder), class_names, recombination_configs)
    return DatasetCardData(configs=configs, dataset_info=infos, **card_fields)


def write_release_info(folder: str | os.PathLike, info: dict) -> Path:
    """Write `recombinet.json` (with `format_version` and the sha256 of every shard) atomically."""
    folder = Path(folder)
    shards = {
        path.relative_to(folder).as_posix(): sha256_file(path) for path in sorted((folder / "data").rglob("*.parquet"))
    }
    payload = {"format_version": FORMAT_VERSION, **info, "shards": shards}
    target = folder / RELEASE_INFO_FILE
    with atomic_path(target) as temp:
        Path(temp).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def write_minimal_card(
    folder: str | os.PathLike, class_names: Sequence[str], recombination_configs: Sequence[str], **card_fields: Any
) -> Path:
    """A README.md with the release's YAML metadata and a short text (the full card comes from
    `recombinet_card.render_card`)."""
    card_data = release_card_data(folder, class_names, recombination_configs, **card_fields)
    content = f"---\n{card_data.to_yaml()}\n---\n\n# RecombiNet release\n\nLoad with `recombinet_hf.load_dataset`.\n"
    target = Path(folder) / "README.md"
    DatasetCard(content).save(target)
    return target


def check_format_version(info: dict, where: str) -> None:
    version = info.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ValueError(
            f"{where} has format_version={version!r}, but this recombinet_hf reads format_version "
            f"{list(SUPPORTED_FORMAT_VERSIONS)}. Upgrade recombinet (`pip install -U recombinet`) "
            "or load a release revision made for this version."
        )


def read_release_info(
    path: str | os.PathLike,
    *,
    revision: Optional[str] = None,
    token: Optional[str | bool] = None,
    cache_dir: Optional[str] = None,
) -> dict:
    """Read and check `recombinet.json` from a local release folder or a Hub dataset repo."""
    local = Path(path)
    if local.is_dir():
        target = local / RELEASE_INFO_FILE
        if not target.is_file():
            raise FileNotFoundError(
                f"{local} has no {RELEASE_INFO_FILE}: it is not a RecombiNet release folder "
                "(build one with `recombinet build`)."
            )
    elif str(path).startswith(("/", ".", "~")):  # a filesystem path, never a Hub id
        raise FileNotFoundError(f"No release folder at {str(path)!r}.")
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError
        from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

        try:
            target = Path(
                hf_hub_download(
                    str(path), RELEASE_INFO_FILE, repo_type="dataset", revision=revision, token=token, cache_dir=cache_dir
                )
            )
        except (HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError, EntryNotFoundError, RevisionNotFoundError) as error:
            raise FileNotFoundError(
                f"{str(path)!r} is neither a local release folder nor a Hub dataset repo with {RELEASE_INFO_FILE} "
                f"(revision={revision!r}): {type(error).__name__}: {error}"
            ) from error
    try:
        info = json.loads(target.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{target} is not valid JSON: {error}") from error
    check_format_version(info, str(target))
    return info
