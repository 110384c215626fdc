"""Batch MixUp / CutMix after recombination: no torchvision, no global random state.

Three layers, as in `timm/data/mixup.py` and torchvision's transforms v2:

* maths in pure functions of explicit inputs: `one_hot`, `mixup_target`, `rand_bbox`,
  `cutmix_bbox_and_lam`, `mix_images`, `cut_images`;
* transforms with torchvision's v2 calling convention, `transform(images, labels) ->
  (images, soft_labels)` (labels int64 [B], soft labels float [B, num_classes]), whose
  randomness comes from an explicit `numpy.random.Generator`: `MixUp`, `CutMix`, `RandomChoice`
  (`make_params(rng, images)` draws, `apply(images, labels, params)` is deterministic);
* `MixCollator`: collates recombined rows, then applies *any* such batch transform (ours or
  torchvision's `v2.MixUp`/`v2.CutMix`); ours get a generator seeded per batch from
  (seed, epoch, batch index, rank).

The partner of sample i is sample i - 1 (`roll(1, 0)`, as torchvision does). Soft targets are
trained with `soft_cross_entropy` (pass it as `Trainer(compute_loss_func=...)`), not with the
models' own loss, which treats float labels as multi-label targets.
"""

from __future__ import annotations

import inspect
import math
import os
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._validation import check_range
from .epoch import SharedEpoch

#: A batch transform with torchvision's v2 CutMix/MixUp calling convention.
BatchTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


# maths ----------------------------------------------------------------------------------------
def one_hot(labels: torch.Tensor, num_classes: int, on_value: float = 1.0, off_value: float = 0.0) -> torch.Tensor:
    """Float targets [B, num_classes]: `on_value` at each label, `off_value` elsewhere."""
    targets = torch.full((labels.shape[0], num_classes), float(off_value), device=labels.device)
    return targets.scatter_(1, labels.long().view(-1, 1), float(on_value))


def mixup_target(labels: torch.Tensor, num_classes: int, lam: float = 1.0, smoothing: float = 0.0) -> torch.Tensor:
    """Soft targets of a batch mixed with its roll by one: `lam * y + (1 - lam) * y.roll(1, 0)`,
    each row label-smoothed by `smoothing` first. Every row sums to 1."""
    off_value = smoothing / num_classes
    on_value = 1.0 - smoothing + off_value
    first = one_hot(labels, num_classes, on_value, off_value)
    second = one_hot(labels.roll(1, 0), num_classes, on_value, off_value)
    return first * lam + second * (1.0 - lam)


def rand_bbox(
    img_shape: Sequence[int], lam: float, rng: np.random.Generator, margin: float = 0.0
) -> tuple[int, int, int, int]:
    """A CutMix box `(y0, y1, x0, x1)` covering about `1 - lam` of an image of shape `(..., H, W)`.

    The box has sides `sqrt(1 - lam)` of the image's, its centre is uniform (kept `margin` of a
    side away from the border) and it is clipped to the image, so it may be smaller than asked:
    see `cutmix_bbox_and_lam` for the corrected `lam`.
    """
    check_range("lam", lam, 0.0, 1.0)
    check_range("margin", margin, 0.0, 0.5)
    img_h, img_w = int(img_shape[-2]), int(img_shape[-1])
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
    margin_y, margin_x = int(margin * cut_h), int(margin * cut_w)
    cy = int(rng.integers(margin_y, max(img_h - margin_y, margin_y + 1)))
    cx = int(rng.integers(margin_x, max(img_w - margin_x, margin_x + 1)))
    y0, y1 = int(np.clip(cy - cut_h // 2, 0, img_h)), int(np.clip(cy + cut_h // 2, 0, img_h))
    x0, x1 = int(np.clip(cx - cut_w // 2, 0, img_w)), int(np.clip(cx + cut_w // 2, 0, img_w))
    return y0, y1, x0, x1


def cutmix_bbox_and_lam(
    img_shape: Sequence[int], lam: float, rng: np.random.Generator, *, correct_lam: bool = True, margin: float = 0.0
) -> tuple[tuple[int, int, int, int], float]:
    """The CutMix box and the `lam` to mix targets with: with `correct_lam`, `1 - box area / image
    area` of the clipped box (the fraction of each image that really is its own)."""
    box = rand_bbox(img_shape, lam, rng, margin)
    if correct_lam:
        y0, y1, x0, x1 = box
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(img_shape[-2] * img_shape[-1])
    return box, float(lam)


def mix_images(images: torch.Tensor, lam: float) -> torch.Tensor:
    """MixUp of a batch with its roll by one: `lam * x + (1 - lam) * x.roll(1, 0)` (new tensor)."""
    return images * lam + images.roll(1, 0) * (1.0 - lam)


def cut_images(images: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """CutMix: a copy of the batch with `box` (y0, y1, x0, x1) taken from the batch rolled by one."""
    y0, y1, x0, x1 = box
    out = images.clone()
    out[..., y0:y1, x0:x1] = images.roll(1, 0)[..., y0:y1, x0:x1]
    return out


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _check_batch(images: torch.Tensor, labels: torch.Tensor, num_classes: int, name: str) -> None:
    """Raise a TypeError/ValueError naming the argument unless images are float [B, ..., H, W] and
    labels int [B] in [0, num_classes)."""
    if not isinstance(images, torch.Tensor) or images.ndim < 3 or not images.is_floating_point():
        raise TypeError(
            f"{name} expects float `images` [B, ..., H, W] (e.g. `pixel_values` from an image processor), "
            f"got {_describe(images)}."
        )
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point():
        raise TypeError(f"{name} expects integer `labels` of shape [B], got {_describe(labels)}.")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{name}: `images` has {images.shape[0]} samples but `labels` has {labels.shape[0]}.")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"{name}: labels must lie in [0, {num_classes - 1}] (`num_classes={num_classes}`), got "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )


# transforms -----------------------------------------------------------------------------------
class _BatchMix:
    """Shared parts of `MixUp` and `CutMix`: arguments, probability, default generator."""

    #: Marks transforms that take `generator=` (torchvision's do not).
    accepts_generator = True

    def __init__(self, alpha: float = 1.0, num_classes: Optional[int] = None, *, p: float = 1.0,
                 label_smoothing: float = 0.0, seed: int = 0) -> None:
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(f"`num_classes` must be a positive integer, got {num_classes!r}.")
        if not float(alpha) > 0:
            raise ValueError(f"`alpha` must be > 0, got {alpha!r}.")
        self.alpha = float(alpha)
        self.num_classes = int(num_classes)
        self.p = float(check_range("p", p, 0.0, 1.0))
        self.label_smoothing = float(check_range("label_smoothing", label_smoothing, 0.0, 1.0))
        self._default_rng = np.random.default_rng(seed)

    def _draw_lam(self, rng: np.random.Generator) -> float:
        """lam ~ Beta(alpha, alpha); 1 (no mixing) with probability 1 - p."""
        if self.p < 1.0 and rng.random() >= self.p:
            return 1.0
        return float(rng.beta(self.alpha, self.alpha))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, *, generator: Optional[np.random.Generator] = None):
        """Mix a batch: `(images [B, C, H, W] float, labels [B] int) -> (images, soft labels [B, num_classes])`.

        `generator` (a numpy Generator) gives every random draw; without it the transform's own
        generator (seeded by `seed`) is used. The global random state is never touched."""
        _check_batch(images, labels, self.num_classes, type(self).__name__)
        params = self.make_params(generator if generator is not None else self._default_rng, images)
        return self.apply(images, labels, params)

    def make_params(self, rng: np.random.Generator, images: torch.Tensor) -> dict:
        raise NotImplementedError

    def apply(self, images: torch.Tensor, labels: torch.Tensor, params: Mapping[str, Any]):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, num_classes={self.num_classes}, p={self.p})"


class MixUp(_BatchMix):
    """MixUp (Zhang et al. 2018): each image blended with its batch neighbour, lam ~ Beta(alpha, alpha).

    Args:
        alpha: Beta distribution parameter (> 0).
        num_classes: width of the soft targets.
        p: probability of mixing a batch (otherwise lam = 1: one-hot targets).
        label_smoothing: smoothing applied to both targets before mixing.
        seed: seed of the generator used when none is passed to the call.
    """

    def make_params(self, rng: np.random.Generator, images: torch.Tensor) -> dict:
        return {"lam": self._draw_lam(rng)}

    def apply(self, images: torch.Tensor, labels: torch.Tensor, params: Mapping[str, Any]):
        lam = float(params["lam"])
        targets = mixup_target(labels, self.num_classes, lam, self.label_smoothing)
        return (mix_images(images, lam) if lam < 1.0 else images), targets


class CutMix(_BatchMix):
    """CutMix (Yun et al. 2019): a box of each image replaced by its batch neighbour's.

    lam ~ Beta(alpha, alpha) sets the box size; the targets use the lam of the clipped box
    (`cutmix_bbox_and_lam`). Arguments as `MixUp`, plus `margin` (see `rand_bbox`).
    """

    def __init__(self, alpha: float = 1.0, num_classes: Optional[int] = None, *, p: float = 1.0,
                 label_smoothing: float = 0.0, seed: int = 0, margin: float = 0.0) -> None:
        super().__init__(alpha, num_classes, p=p, label_smoothing=label_smoothing, seed=seed)
        self.margin = float(check_range("margin", margin, 0.0, 0.5))

    def make_params(self, rng: np.random.Generator, images: torch.Tensor) -> dict:
        lam = self._draw_lam(rng)
        if lam >= 1.0:
            return {"lam": 1.0, "box": (0, 0, 0, 0)}
        box, lam = cutmix_bbox_and_lam(tuple(images.shape), lam, rng, correct_lam=True, margin=self.margin)
        return {"lam": lam, "box": box}

    def apply(self, images: torch.Tensor, labels: torch.Tensor, params: Mapping[str, Any]):
        lam = float(params["lam"])
        targets = mixup_target(labels, self.num_classes, lam, self.label_smoothing)
        return (cut_images(images, tuple(params["box"])) if lam < 1.0 else images), targets


def _takes_generator(transform: Callable) -> bool:
    if getattr(transform, "accepts_generator", False):
        return True
    try:
        return "generator" in inspect.signature(transform).parameters
    except (TypeError, ValueError):
        return False


def call_batch_transform(transform: BatchTransform, images: torch.Tensor, labels: torch.Tensor,
                         generator: Optional[np.random.Generator]):
    """Call `transform(images, labels)`, passing `generator=` when the transform takes one."""
    if generator is not None and _takes_generator(transform):
        return transform(images, labels, generator=generator)
    return transform(images, labels)


class RandomChoice:
    """Apply one of `transforms` per batch (e.g. `RandomChoice([MixUp(...), CutMix(...)])`), chosen
    with probabilities `p` (default uniform) from the explicit generator, which the chosen
    transform then also gets."""

    accepts_generator = True

    def __init__(
        self, transforms: Sequence[BatchTransform], p: Optional[Sequence[float]] = None, *, seed: int = 0
    ) -> None:
        self.transforms = list(transforms)
        if not self.transforms:
            raise ValueError("`transforms` must hold at least one batch transform, got an empty sequence.")
        if p is None:
            p = [1.0 / len(self.transforms)] * len(self.transforms)
        if len(p) != len(self.transforms) or any(v < 0 for v in p) or sum(p) <= 0:
            raise ValueError(
                f"`p` must hold {len(self.transforms)} non-negative weights with a positive sum, got {list(p)!r}."
            )
        self.p = [float(v) / float(sum(p)) for v in p]
        self._default_rng = np.random.default_rng(seed)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, *, generator: Optional[np.random.Generator] = None):
        rng = generator if generator is not None else self._default_rng
        chosen = self.transforms[int(rng.choice(len(self.transforms), p=self.p))]
        return call_batch_transform(chosen, images, labels, rng)


# collation ------------------------------------------------------------------------------------
MIX_MODES = ("none", "mixup", "cutmix", "both")


def batch_mixing(mode: str, num_classes: int, *, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0):
    """The usual recipe by name: `mixup` (alpha 0.8), `cutmix` (alpha 1.0), `both` (one of the
    two per batch) or `none` (None). `MixCollator` seeds them per batch."""
    if mode not in MIX_MODES:
        raise ValueError(f"`mode` must be one of {list(MIX_MODES)}, got {mode!r}.")
    if mode == "none":
        return None
    mixup, cutmix = MixUp(alpha=mixup_alpha, num_classes=num_classes), CutMix(alpha=cutmix_alpha, num_classes=num_classes)
    return {"mixup": mixup, "cutmix": cutmix, "both": RandomChoice([mixup, cutmix])}[mode]


def _rank() -> int:
    """This process's rank under torchrun (`RANK`; inherited by DataLoader workers), else 0."""
    return int(os.environ.get("RANK", "0"))


class MixCollator:
    """Collate recombined rows, then mix the batch with `batch_transform`.

    Args:
        batch_transform: `MixUp`, `CutMix`, `RandomChoice`, or any callable with torchvision's v2
            convention `(images, labels) -> (images, soft_labels)` (e.g. `torchvision.transforms.v2.CutMix`).
        collator: turns rows into `{"pixel_values", "labels", ...}`; default
            `recombinet_hf.training.ImageClassificationCollator()`.
        seed: with `epoch` and the batch index, seeds the generator of each batch.
        epoch: starting epoch; follow training with `set_epoch` (the `EpochCallback` does it).

    Each batch gets `numpy.random.default_rng([seed, epoch, batch_index, rank])`, where
    batch_index is the position of the batch in the epoch as the DataLoader hands batches out
    (worker w of K makes batches w, w + K, ...; this process counts the batches it collated in
    the epoch) and rank comes from `RANK`. A transform without a `generator` parameter
    (torchvision's) uses its own randomness. `enabled = False` switches mixing off (e.g. for
    the last epochs, like timm's `mixup_enabled`).
    """

    def __init__(self, batch_transform: BatchTransform, *, collator: Optional[Callable] = None, seed: int = 0,
                 epoch: int = 0) -> None:
        if not callable(batch_transform):
            raise TypeError(f"`batch_transform` must be callable, got {type(batch_transform).__name__}.")
        if collator is None:
            from .training import ImageClassificationCollator

            collator = ImageClassificationCollator()
        self.batch_transform = batch_transform
        self.collator = collator
        self.seed = int(check_range("seed", seed, 0, math.inf))
        self._epoch = SharedEpoch(epoch)
        self._counts: dict[int, int] = {}
        self.enabled = True

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """Use `epoch` for the following batches (also in running persistent workers)."""
        self._epoch.value = int(check_range("epoch", epoch, 0, math.inf))

    def batch_generator(self, batch_index: int, epoch: Optional[int] = None) -> np.random.Generator:
        """The generator of batch `batch_index` of `epoch` (default: the current epoch)."""
        epoch = self.epoch if epoch is None else int(epoch)
        return np.random.default_rng([self.seed, epoch, int(batch_index), _rank()])

    def _next_batch_index(self, epoch: int) -> int:
        info = torch.utils.data.get_worker_info()
        num_workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        count = self._counts.get(epoch, 0)
        self._counts[epoch] = count + 1
        return count * num_workers + worker

    def __call__(self, rows: Sequence[dict], *, generator: Optional[np.random.Generator] = None) -> dict:
        batch = self.collator(rows)
        if not self.enabled:
            return batch
        if generator is None:
            epoch = self.epoch
            generator = self.batch_generator(self._next_batch_index(epoch), epoch)
        images, labels = call_batch_transform(self.batch_transform, batch["pixel_values"], batch["labels"], generator)
        if labels.ndim != 2 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                "`batch_transform` must return soft labels of shape [B, num_classes], got shape "
                f"{tuple(labels.shape)} for a batch of {images.shape[0]}."
            )
        return {**batch, "pixel_values": images, "labels": labels}


# loss -----------------------------------------------------------------------------------------
def _logits(outputs: Any) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping) or hasattr(outputs, "keys"):
        return outputs["logits"]
    if hasattr(outputs, "logits"):
        return outputs.logits
    return outputs[0]


def soft_cross_entropy(outputs: Any, labels: torch.Tensor, num_items_in_batch: Optional[Any] = None) -> torch.Tensor:
    """Cross-entropy against soft targets [B, C] (rows summing to 1) or class indices [B].

    The `compute_loss_func` of `transformers.Trainer`: `outputs` is the model output (or its
    logits). The loss is the sum of the per-sample losses divided by the number of samples:
    `num_items_in_batch` when given (Trainer's count over all gradient-accumulation batches; for
    soft targets it counts label *elements*, B x C, so it is divided by C here), otherwise the
    samples of this batch (class index -100 is ignored).
    """
    logits = _logits(outputs)
    log_probs = F.log_softmax(logits.float(), dim=-1)
    if labels.is_floating_point():
        if labels.shape != logits.shape:
            raise ValueError(
                f"Soft `labels` must have the logits' shape {tuple(logits.shape)}, got {tuple(labels.shape)}."
            )
        total = -(labels.to(log_probs.dtype) * log_probs).sum()
        count = float(num_items_in_batch) / labels.shape[1] if num_items_in_batch is not None else labels.shape[0]
    else:
        total = F.nll_loss(log_probs, labels.long(), ignore_index=-100, reduction="sum")
        count = float(num_items_in_batch) if num_items_in_batch is not None else int((labels != -100).sum())
    return total / max(float(count), 1.0)
