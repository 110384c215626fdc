"""`load_dataset`: a recombination config of a release, from the Hub or a local folder."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import datasets
from datasets import Dataset, DatasetDict

from .config import RecombineConfig
from .features import DATA_CONFIGS, check_columns
from .originals import Source
from .pool import MIN_BACKGROUNDS_PER_CLASS
from .recombine import Recombine
from .release import read_release_info
from .transforms import GeometricTransform

if TYPE_CHECKING:
    from .streaming import RecombineIterableDataset


def _hub_kwargs(revision, cache_dir, token, num_proc) -> dict:
    kwargs = {"revision": revision, "cache_dir": cache_dir, "token": token, "num_proc": num_proc}
    return {key: value for key, value in kwargs.items() if value is not None}


def _load_data_config(path, config: str, hub_kwargs: dict) -> DatasetDict:
    """Every split of a data config, images left undecoded (decoded on demand, errors naming the row).

    All splits in one call: `datasets` prepares them all anyway, and each call re-parses the
    README (about a second for an ImageNet-sized label list)."""
    loaded = datasets.load_dataset(str(path), config, **hub_kwargs)
    for split, dataset in loaded.items():
        check_columns(config, dataset.features, where=f"{path} ({config}/{split})")
    return DatasetDict({split: dataset.cast_column("image", datasets.Image(decode=False)) for split, dataset in loaded.items()})


def _builder_kwargs(hub_kwargs: dict) -> dict:
    """`load_dataset_builder` takes no `num_proc`."""
    return {key: value for key, value in hub_kwargs.items() if key != "num_proc"}


def _data_files(path, config: str, hub_kwargs: dict) -> tuple[dict[str, list[str]], Optional[datasets.Features]]:
    """The shards of each split of `config`, in the order `datasets` reads them, and the features."""
    builder = datasets.load_dataset_builder(str(path), config, **_builder_kwargs(hub_kwargs))
    files = {split: [str(file) for file in shards] for split, shards in (builder.config.data_files or {}).items()}
    features = builder.info.features
    if features is not None:
        check_columns(config, features, where=f"{path} ({config})")
    return files, features


def _split_slice(spec: str, lengths: dict[str, int], path) -> tuple[str, range]:
    """("train", rows) of a `datasets` split slice such as "train[:10%]" or "validation[100:200]"."""
    try:
        parts = datasets.ReadInstruction.from_spec(spec).to_absolute(lengths)
    except (ValueError, AssertionError) as error:
        raise ValueError(f"Unknown split {spec!r} for {path}; available splits: {list(lengths)} ({error}).") from None
    if len(parts) != 1:
        raise ValueError(
            f"Split {spec!r} combines several splits; load them one by one (each recombines with its own backgrounds)."
        )
    return parts[0].splitname, range(parts[0].from_, parts[0].to)


def load_dataset(
    path: Union[str, os.PathLike],
    name: str,
    split: Optional[str] = None,
    *,
    seed: int = 0,
    epoch: int = 0,
    num_epochs: Optional[int] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
    token: Optional[Union[str, bool]] = None,
    num_proc: Optional[int] = None,
    source: Optional[Source] = None,
    background_transform: Optional[Union[GeometricTransform, Callable]] = None,
    image_transform: Optional[Callable] = None,
    return_mask: bool = False,
    return_params: bool = False,
    train: Optional[bool] = None,
    min_backgrounds_per_class: int = MIN_BACKGROUNDS_PER_CLASS,
    streaming: bool = False,
    shuffle: Optional[bool] = None,
    **config_overrides: Any,
) -> Union[Dataset, DatasetDict, "RecombineIterableDataset", dict]:
    """Load config `name` of a RecombiNet release, recombining each sample when it is read.

    Args:
        path: a Hub dataset id (`"org/name"`) or a local release folder (same layout).
        name: a recombination config name such as `"same-range-pt0.8"` (see `RecombineConfig`),
            or a data config (`"foregrounds"`, `"backgrounds"`, `"masks"`), returned as stored.
        split: `"train"` or `"validation"`, or a slice of one such as `"train[:10%]"` (map-style);
            None gives a `DatasetDict` of all splits.
        seed, epoch, num_epochs: randomness derives from (seed, epoch, idx) only; change the
            epoch with `recombinet_hf.set_epoch(dataset, epoch)` (a map-style
            `datasets.Dataset` has no `set_epoch` method; a streaming one has).
        revision, cache_dir, token, num_proc: passed to `datasets.load_dataset`.
        source, background_transform, image_transform, return_mask, return_params,
        min_backgrounds_per_class: see `Recombine`.
        train: random (True) or centred (False) crops of oversized foregrounds; default: split == "train".
        streaming: return a `RecombineIterableDataset` (a torch `IterableDataset`) that reads the
            foreground shards a row group at a time and background images on demand (see
            `recombinet_hf.streaming`); same sample for the same (seed, epoch, idx) as map-style.
        shuffle: streaming only: permute row groups per epoch and shuffle rows in a buffer
            (default: split == "train"). Map-style datasets are shuffled by the sampler.
        **config_overrides: recombination parameters, e.g. `rotation=20` (shown in `config.name`).

    Returns:
        A `datasets.Dataset` whose rows are `{"image" | "pixel_values", "label", "fg_key",
        "bg_key", "bg_label"}` (+ `mask`, `params`), or a `DatasetDict` when `split` is None; with
        `streaming=True` a `RecombineIterableDataset` (a dict of them when `split` is None).
    """
    hub_kwargs = _hub_kwargs(revision, cache_dir, token, num_proc)
    if shuffle is not None and not streaming:
        raise ValueError(
            f"`shuffle={shuffle!r}` applies to `streaming=True` only; map-style datasets are shuffled by the "
            "DataLoader's sampler."
        )
    read_release_info(path, revision=revision, token=token, cache_dir=cache_dir)
    if name in DATA_CONFIGS:
        if config_overrides:
            raise ValueError(
                f"Recombination parameters {sorted(config_overrides)} do not apply to data config {name!r}."
            )
        if streaming:
            hub_kwargs.pop("num_proc", None)
            return datasets.load_dataset(str(path), name, split=split, streaming=True, **hub_kwargs)
        return datasets.load_dataset(str(path), name, split=split, **hub_kwargs)
    config = RecombineConfig.from_name(name, **config_overrides)
    if streaming:
        foreground_files, foreground_features = _data_files(path, "foregrounds", hub_kwargs)
        splits = list(foreground_files)
    else:
        foregrounds = _load_data_config(path, "foregrounds", hub_kwargs)
        splits = list(foregrounds)
    rows = None  # a slice such as "train[:10%]" (map-style only)
    if split is not None and split not in splits:
        if streaming or "[" not in split:
            raise ValueError(f"Unknown split {split!r} for {path}; available splits: {splits}.")
        split, rows = _split_slice(split, {name: len(foregrounds[name]) for name in splits}, path)
    if streaming:
        from .streaming import ParquetFiles, RecombineIterableDataset, StreamedBackgrounds, streaming_features

        background_files, _ = _data_files(path, "backgrounds", hub_kwargs)
    else:
        backgrounds = _load_data_config(path, "backgrounds", hub_kwargs)

    def recombiner_for(each: str, backgrounds_of_split) -> Recombine:
        return Recombine(
            config,
            backgrounds_of_split,
            seed=seed,
            epoch=epoch,
            num_epochs=num_epochs,
            train=(each == "train") if train is None else train,
            min_backgrounds_per_class=min_backgrounds_per_class,
            source=source,
            background_transform=background_transform,
            image_transform=image_transform,
            return_mask=return_mask,
            return_params=return_params,
        )

    result = {}
    for each in splits if split is None else [split]:
        if streaming:
            streamed = StreamedBackgrounds(ParquetFiles(background_files.get(each, []), token=token))
            features = None
            if foreground_features is not None:
                features = streaming_features(foreground_features, image_column=None if image_transform else "image")
            result[each] = RecombineIterableDataset(
                ParquetFiles(foreground_files[each], token=token), recombiner_for(each, streamed), features=features,
                shuffle=(each == "train") if shuffle is None else shuffle, seed=seed,
            )
        else:
            if each not in backgrounds:
                raise ValueError(f"{path} has foregrounds but no backgrounds for split {each!r}.")
            result[each] = foregrounds[each] if rows is None else foregrounds[each].select(rows)
            result[each].set_transform(recombiner_for(each, backgrounds[each]))
    if split is not None:
        return result[split]
    return result if streaming else DatasetDict(result)


def get_recombiner(dataset: Dataset) -> Recombine:
    """The `Recombine` transform of a dataset from `load_dataset` (survives `select`/`shuffle`;
    streaming datasets carry it as `.recombiner`, also after `shard`)."""
    if isinstance(getattr(dataset, "recombiner", None), Recombine):
        return dataset.recombiner
    transform = (getattr(dataset, "format", None) or {}).get("format_kwargs", {}) or {}
    transform = transform.get("transform")
    if not isinstance(transform, Recombine):
        raise ValueError("This dataset has no recombination transform; load it with `recombinet_hf.load_dataset`.")
    return transform


def set_epoch(dataset: Dataset, epoch: int) -> None:
    """Set the epoch of a recombined dataset: images change, schedules advance. Reaches running
    (persistent) DataLoader workers, forked or spawned. Works on streaming datasets too."""
    get_recombiner(dataset).set_epoch(epoch)
