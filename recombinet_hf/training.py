"""Fine-tuning on a recombination config: the pieces users otherwise trip on.

* `LabelSpace`: `id2label`/`label2id` from the release's `ClassLabel`, optionally compacted to
  the classes present (the sample release has the 1000 ImageNet names but 20 classes).
* `image_processor_for`: a PIL image processor (`ViTImageProcessorPil`, ...; no torchvision)
  with the model's input size and normalisation, to pass as `image_transform=`.
* `ImageClassificationCollator`: rows -> `{"pixel_values", "labels"}`; drops the provenance
  columns (`fg_key`, `bg_key`, `bg_label`, `params`), maps `label` -> `labels` (through the
  label space), keeps tensors.
* `compute_accuracy`: local accuracy for `compute_metrics` (no metric downloads).
* `EpochCallback`: `set_epoch` on the datasets and collators at each epoch start, so
  recombination, `oip` schedules and MixUp/CutMix follow training, in persistent workers too.
* `RecombineTrainer`: `transformers.Trainer` with a separate `eval_data_collator` (no mixing of
  evaluation batches) and `remove_unused_columns=False` checked.
* `load_original_images`: the evaluation view of a release, the original images.
* `build_model`: a pretrained id or a tiny random ViT/ConvNeXt for offline runs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from .config import RecombineConfig

#: Columns of a recombined row that describe where it came from; not model inputs.
PROVENANCE_COLUMNS: tuple[str, ...] = ("fg_key", "bg_key", "bg_label", "params")

#: Tiny randomly initialised models for offline runs: `build_model("vit-tiny", ...)`.
TINY_MODELS: tuple[str, ...] = ("vit-tiny", "convnext-tiny")


# labels -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelSpace:
    """The model's classes and how dataset labels map onto them.

    Attributes:
        names: class names in model output order.
        dataset_labels: the dataset label of each model output (identity for the full space).
    """

    names: tuple[str, ...]
    dataset_labels: tuple[int, ...]
    _to_model: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.dataset_labels):
            raise ValueError(
                f"`names` ({len(self.names)}) and `dataset_labels` ({len(self.dataset_labels)}) differ in length."
            )
        self._to_model.update({int(label): index for index, label in enumerate(self.dataset_labels)})

    @classmethod
    def from_dataset(cls, dataset: Any, *, compact: bool = False) -> "LabelSpace":
        """From the `label` ClassLabel of a dataset of `load_dataset` (map-style or streaming);
        `compact=True` keeps only the labels present in it, in label order."""
        names = class_names(dataset)
        labels = present_labels(dataset) if compact else list(range(len(names)))
        return cls(tuple(names[label] for label in labels), tuple(int(label) for label in labels))

    @property
    def num_labels(self) -> int:
        return len(self.names)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.names)}

    @property
    def is_identity(self) -> bool:
        return self.dataset_labels == tuple(range(len(self.dataset_labels)))

    def to_model(self, label: int) -> int:
        """The model output index of dataset label `label`."""
        try:
            return self._to_model[int(label)]
        except KeyError:
            raise ValueError(
                f"Dataset label {label} is not in this label space ({self.num_labels} classes); build it with "
                "`LabelSpace.from_dataset(train_dataset, compact=...)` from a dataset that holds every class."
            ) from None


def class_names(dataset: Any) -> list[str]:
    """Names of the `label` ClassLabel of a dataset from `load_dataset` (map-style or streaming)."""
    features = getattr(dataset, "features", None)
    label = features.get("label") if features is not None else None
    if label is None or not hasattr(label, "names"):
        raise ValueError("The dataset has no `label` ClassLabel feature; load it with `recombinet_hf.load_dataset`.")
    return list(label.names)


def present_labels(dataset: Any) -> list[int]:
    """Sorted labels that occur in a dataset from `load_dataset` (read from the stored column,
    without recombining)."""
    if hasattr(dataset, "present_labels"):
        return list(dataset.present_labels())
    return sorted({int(label) for label in dataset.with_format(None)["label"]})


# images -------------------------------------------------------------------------------------
def _field(size: Any, key: str) -> Any:
    """A field of a processor's size (a `SizeDict` or a plain dict), or None."""
    if size is None:
        return None
    return size.get(key) if isinstance(size, Mapping) else getattr(size, key, None)


def image_processor_for(model: Any, *, image_size: Optional[int] = None, **overrides: Any):
    """A PIL-backend image processor for `model` (no torchvision): pass it as `image_transform=`.

    `model` may be a Hub id or local path (`AutoImageProcessor.from_pretrained(..., backend="pil")`),
    a model, or a config: then the model type's `*ImageProcessorPil` is built with the config's
    `image_size` (or `image_size=`) and its default normalisation. `overrides` go to the processor.
    """
    if isinstance(model, (str, os.PathLike)):
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(str(model), backend="pil", **overrides)
    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    config = getattr(model, "config", model)
    entry = IMAGE_PROCESSOR_MAPPING_NAMES.get(getattr(config, "model_type", None)) or {}
    name = entry.get("pil") if isinstance(entry, Mapping) else None
    if name is None:
        raise ValueError(
            f"No PIL image processor is known for model_type {getattr(config, 'model_type', None)!r}; "
            "pass a processor as `image_transform=` yourself."
        )
    processor_class = getattr(transformers, name)
    size = int(image_size or getattr(config, "image_size", 224))
    defaults = processor_class()
    if _field(defaults.size, "shortest_edge"):
        overrides.setdefault("size", {"shortest_edge": size})
    else:
        overrides.setdefault("size", {"height": size, "width": size})
    if getattr(defaults, "crop_size", None) is not None:
        overrides.setdefault("crop_size", {"height": size, "width": size})
    return processor_class(**overrides)


# collation ----------------------------------------------------------------------------------
def _to_tensor(values: list, name: str) -> torch.Tensor:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    if isinstance(first, np.ndarray):
        return torch.from_numpy(np.stack(values))
    if isinstance(first, (bool, int, float, np.integer, np.floating)):
        return torch.tensor(values)
    if hasattr(first, "getpixel"):
        raise TypeError(
            f"Column {name!r} holds PIL images: load the dataset with `image_transform=` (e.g. "
            "`image_processor_for(model)`) so rows carry `pixel_values` tensors."
        )
    raise TypeError(f"Column {name!r} holds {type(first).__name__} values, which cannot be batched into a tensor.")


class ImageClassificationCollator:
    """Rows of a recombined dataset -> a model batch `{"pixel_values": float [B, C, H, W], "labels": int64 [B]}`.

    Args:
        label_space: maps dataset labels to model outputs (default: labels as stored).
        keep: further columns to batch as tensors (e.g. `("mask",)`); others are dropped, among
            them the provenance columns `fg_key`, `bg_key`, `bg_label`, `params`.
    """

    def __init__(self, label_space: Optional[LabelSpace] = None, keep: Sequence[str] = ()) -> None:
        self.label_space = label_space
        self.keep = tuple(keep)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("Cannot collate an empty batch.")
        if "pixel_values" not in rows[0]:
            column = "image" if "image" in rows[0] else None
            if column is not None:
                _to_tensor([rows[0][column]], column)  # raises the helpful TypeError for PIL images
            raise KeyError(f"Rows have no `pixel_values`; columns are {sorted(rows[0])}.")
        labels = [int(row["label"]) for row in rows]
        if self.label_space is not None and not self.label_space.is_identity:
            labels = [self.label_space.to_model(label) for label in labels]
        batch = {
            "pixel_values": _to_tensor([row["pixel_values"] for row in rows], "pixel_values").float(),
            "labels": torch.tensor(labels, dtype=torch.long),
        }
        for name in self.keep:
            batch[name] = _to_tensor([row[name] for row in rows], name)
        return batch


# metrics ------------------------------------------------------------------------------------
def compute_accuracy(eval_pred: Any) -> dict[str, float]:
    """Top-1 accuracy for `Trainer(compute_metrics=...)`: argmax of the logits against the labels
    (class indices, or the argmax of soft labels)."""
    predictions, labels = eval_pred[0], eval_pred[1]
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(-1)
    predicted = predictions.argmax(-1) if predictions.ndim == 2 else predictions
    valid = labels != -100
    return {"accuracy": float((predicted[valid] == labels[valid]).mean()) if valid.any() else 0.0}


# epochs -------------------------------------------------------------------------------------
def set_epoch_of(target: Any, epoch: int) -> None:
    """`set_epoch` on a dataset of `load_dataset` (map-style or streaming), a collator, or anything
    with a `set_epoch(epoch)` method."""
    import datasets

    from .loading import set_epoch

    if isinstance(target, datasets.Dataset):
        set_epoch(target, epoch)
    elif hasattr(target, "set_epoch"):
        target.set_epoch(epoch)
    else:
        raise TypeError(f"{type(target).__name__} has no epoch to set (no `set_epoch`).")


class EpochCallback(TrainerCallback):
    """Set the epoch of `targets` (datasets, collators) when each training epoch begins.

    `Trainer` calls `on_epoch_begin` before it creates the epoch's DataLoader iterator, and the
    epoch lives in shared memory (`SharedEpoch`), so workers (forked or spawned), persistent ones included,
    draw the new epoch's images. The epoch is `floor(state.epoch)` (also after resuming mid-epoch).
    """

    def __init__(self, *targets: Any) -> None:
        import datasets

        self.targets = [target for target in targets if target is not None]
        for target in self.targets:
            if not isinstance(target, datasets.Dataset) and not hasattr(target, "set_epoch"):
                raise TypeError(f"EpochCallback targets need a `set_epoch` method; {type(target).__name__} has none.")

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = int(math.floor((state.epoch or 0.0) + 1e-6))
        for target in self.targets:
            set_epoch_of(target, epoch)
        return control


class RecombineTrainer(Trainer):
    """`transformers.Trainer` for recombined data.

    Differences: `eval_data_collator` (default: the collator inside a `MixCollator`
    `data_collator`, else `data_collator`) collates evaluation batches, so MixUp/CutMix never touch them; and
    `args.remove_unused_columns` must be False (else `Trainer` drops the foreground columns
    before the recombination transform sees them).
    """

    def __init__(self, *args: Any, eval_data_collator: Optional[Callable] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.args.remove_unused_columns:
            raise ValueError(
                "`TrainingArguments(remove_unused_columns=True)` drops the columns the recombination "
                "needs before it runs; pass `remove_unused_columns=False`."
            )
        if eval_data_collator is None:
            from .mixing import MixCollator

            mixing = isinstance(self.data_collator, MixCollator)
            eval_data_collator = self.data_collator.collator if mixing else self.data_collator
        self.eval_data_collator = eval_data_collator

    def _with_collator(self, collator: Callable, make: Callable):
        train_collator = self.data_collator
        self.data_collator = collator
        try:
            return make()
        finally:
            self.data_collator = train_collator

    def get_eval_dataloader(self, eval_dataset=None):
        make = super().get_eval_dataloader
        return self._with_collator(self.eval_data_collator, lambda: make(eval_dataset))

    def get_test_dataloader(self, test_dataset):
        make = super().get_test_dataloader
        return self._with_collator(self.eval_data_collator, lambda: make(test_dataset))


# data and models ----------------------------------------------------------------------------
def original_config_name(name: Union[str, RecombineConfig]) -> str:
    """The config name that returns every foreground's original image (`orig_img_prob=1`)."""
    config = RecombineConfig.from_name(name) if isinstance(name, str) else name
    return config.replace(orig_img_prob=1.0).name


def load_original_images(path, name: Union[str, RecombineConfig], split: str, **kwargs: Any):
    """The original (not recombined) images of a release split, for evaluation: config `name`
    with `orig_img_prob=1`, centred crops (`train=False`). With `source=` (a folder of the source
    images, e.g. the sample photos) the originals are read from it; without it they are
    reconstructed (foreground pasted back on its own background). `source="sample"` means the
    photos of the builder's `sample` source. `kwargs` go to `load_dataset`."""
    from .loading import load_dataset

    if kwargs.get("source") == "sample":
        try:
            from recombinet_builder.sample import sample_folder
        except ImportError as error:
            raise ImportError(f"`source='sample'` needs the builder (`pip install recombinet[builder]`): {error}") from error
        kwargs["source"] = str(sample_folder())
    kwargs.setdefault("train", False)
    return load_dataset(path, original_config_name(name), split=split, **kwargs)


def tiny_model_config(kind: str, label_space: LabelSpace, *, image_size: int = 32):
    """A tiny `ViTConfig` or `ConvNextConfig` (randomly initialised models for offline runs)."""
    labels = {"num_labels": label_space.num_labels, "id2label": label_space.id2label, "label2id": label_space.label2id}
    if kind == "vit-tiny":
        from transformers import ViTConfig

        return ViTConfig(
            image_size=image_size, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=128, **labels,
        )
    if kind == "convnext-tiny":
        from transformers import ConvNextConfig

        return ConvNextConfig(
            image_size=image_size, num_channels=3, patch_size=4, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1],
            **labels,
        )
    raise ValueError(f"`kind` must be one of {list(TINY_MODELS)}, got {kind!r}.")


def build_model(model: str, label_space: LabelSpace, *, image_size: int = 32, seed: int = 0):
    """`AutoModelForImageClassification` for `model`: `"vit-tiny"`/`"convnext-tiny"` (random
    weights from `tiny_model_config`, seeded by `seed`) or a Hub id/path (pretrained, head resized
    to the label space)."""
    from transformers import AutoModelForImageClassification

    labels = {"num_labels": label_space.num_labels, "id2label": label_space.id2label, "label2id": label_space.label2id}
    if model in TINY_MODELS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            config = tiny_model_config(model, label_space, image_size=image_size)
            return AutoModelForImageClassification.from_config(config)
    return AutoModelForImageClassification.from_pretrained(model, ignore_mismatched_sizes=True, **labels)
