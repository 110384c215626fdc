"""`Recombine`: the per-sample transform that pastes foregrounds on backgrounds at load time.

It is what `set_transform` runs: it gets a batch of foreground rows (columns, no row numbers)
and returns recombined samples. Each sample is a pure function of (foreground row, background
row, config, seed, epoch, idx): the same in every DataLoader worker and after any restart.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

from PIL import Image

from ._validation import check_range
from .compositing import fit_to_box, paste_at_box, paste_foreground, scale_box
from .epoch import SharedEpoch
from .config import RecombineConfig
from .images import decode_image, image_bytes, to_rgb, to_rgba
from .originals import OriginalImages, Source, resolve_source
from .pool import MIN_BACKGROUNDS_PER_CLASS, BackgroundPool
from .sampling import (
    STREAM_CHOICE,
    STREAM_GEOMETRY,
    STREAM_TRANSFORM,
    RecombineParams,
    sample_generators,
    sample_geometry,
    schedule_probability,
)
from .transforms import GeometricTransform, sample_and_apply


def _first_channel(value: Any) -> Any:
    """One channel of a transformed mask: L for PIL, [H, W] for CHW tensors and HWC arrays."""
    if isinstance(value, Image.Image):
        return value.convert("L")
    if getattr(value, "ndim", 0) == 3:
        channels_last = value.shape[-1] in (1, 3) and value.shape[0] not in (1, 3)
        return value[..., 0] if channels_last else value[0]
    return value


def _is_image_processor(transform: Any) -> bool:
    return hasattr(transform, "preprocess") and hasattr(transform, "model_input_names")


class Recombine:
    """Recombine foreground rows with backgrounds, as a `datasets` transform.

    Args:
        config: a `RecombineConfig` or a config name such as `"same-range-pt0.8"`.
        backgrounds: the `backgrounds` split (a `datasets.Dataset`), read on demand by row.
        seed: base seed; every random choice of a sample derives from (seed, epoch, idx).
        epoch: starting epoch (see `set_epoch`).
        num_epochs: total epochs, needed by `orig_img_prob` schedules.
        train: random crops of oversized foregrounds (True) or centred (False).
        min_backgrounds_per_class: pruning fallback size (see `BackgroundPool`).
        source: where original images come from (folder, dataset with `key`/`image`, mapping or
            callable); without it originals are reconstructed from foreground + own background.
        background_transform: a `recombinet_hf.transforms` transform (e.g. `RandomResizedCrop`):
            with `paste_pre_transform=False` (token `post`) it is applied to the background before
            pasting; otherwise to the pasted image and its mask together.
        image_transform: any callable on a PIL image, or a transformers image processor
            (output in `pixel_values`), applied last.
        return_mask: add `mask`, the pasted alpha aligned with the output.
        return_params: add `params`, the sampled `RecombineParams` as a dict (replay with `apply`).
        fg_in_nonant: evaluation hook (centre bias): place every object in cell 0-8 of a 3x3 grid.
        fg_size_factor: evaluation hook (size bias): multiply every target area by this factor.
    """

    def __init__(
        self,
        config: Union[RecombineConfig, str],
        backgrounds,
        *,
        seed: int = 0,
        epoch: int = 0,
        num_epochs: Optional[int] = None,
        train: bool = True,
        min_backgrounds_per_class: int = MIN_BACKGROUNDS_PER_CLASS,
        source: Optional[Source] = None,
        background_transform: Optional[Union[GeometricTransform, Callable]] = None,
        image_transform: Optional[Callable] = None,
        return_mask: bool = False,
        return_params: bool = False,
        fg_in_nonant: Optional[int] = None,
        fg_size_factor: float = 1.0,
    ) -> None:
        self.config = RecombineConfig.from_name(config) if isinstance(config, str) else config
        if int(seed) < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
        self.seed = int(seed)
        self._epoch = SharedEpoch(epoch)
        self.num_epochs = num_epochs
        schedule_probability(self.config.orig_img_prob, int(epoch), num_epochs)  # fail early
        self.train = train
        self.backgrounds = backgrounds
        self.pool = BackgroundPool(
            idx=backgrounds["idx"],
            keys=backgrounds["key"],
            labels=backgrounds["label"],
            fg_ratios=backgrounds["fg_ratio"],
            background_combination=self.config.background_combination,
            pruning_threshold=self.config.pruning_threshold,
            min_backgrounds_per_class=min_backgrounds_per_class,
        )
        self.originals: Optional[OriginalImages] = resolve_source(source)
        if (
            return_mask
            and background_transform is not None
            and not isinstance(background_transform, GeometricTransform)
            and self.config.paste_pre_transform
        ):
            raise ValueError(
                "`return_mask=True` with `paste_pre_transform=True` needs a recombinet_hf.transforms "
                "`background_transform` (so the mask gets the same geometry); got "
                f"{type(background_transform).__name__}."
            )
        self.background_transform = background_transform
        self.image_transform = image_transform
        self.return_mask = return_mask
        self.return_params = return_params
        if fg_in_nonant is not None and fg_in_nonant not in range(9):
            raise ValueError(f"`fg_in_nonant` must be None or an integer in 0..8, got {fg_in_nonant!r}.")
        self.fg_in_nonant = fg_in_nonant
        self.fg_size_factor = check_range("fg_size_factor", float(fg_size_factor), 0.0, math.inf, lo_inclusive=False)

    # epochs -----------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """Use `epoch` for the following samples (also in running persistent workers)."""
        if int(epoch) < 0:
            raise ValueError(f"`epoch` must be >= 0, got {epoch!r}.")
        self._epoch.value = int(epoch)

    # sampling ---------------------------------------------------------------------------
    def sample_params(self, row: dict, epoch: Optional[int] = None) -> RecombineParams:
        """Draw the parameters for foreground `row` at `epoch` (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        generators = sample_generators(self.seed, epoch, int(row["idx"]))
        choice = generators[STREAM_CHOICE]
        probability = schedule_probability(self.config.orig_img_prob, epoch, self.num_epochs)
        if probability > 0 and choice.random() < probability:
            return RecombineParams(idx=int(row["idx"]), use_original=True)
        bg_row = self.pool.sample_row(choice, label=int(row["label"]), key=row["key"])
        geometry = sample_geometry(
            generators[STREAM_GEOMETRY],
            self.config,
            fg_ratio=float(row["fg_ratio"]),
            bg_ratio=float(self.pool.fg_ratios[bg_row]),
            train=self.train,
            size_factor=self.fg_size_factor,
            nonant=self.fg_in_nonant,
        )
        return RecombineParams(idx=int(row["idx"]), bg_idx=int(self.pool.idx[bg_row]), **geometry)

    # pixels -----------------------------------------------------------------------------
    def _background(self, row: int) -> tuple[Image.Image, dict]:
        record = self.backgrounds[int(row)]
        return to_rgb(decode_image(image_bytes(record["image"]), key=record["key"], what="background")), record

    def _original(self, row: dict, foreground: Image.Image) -> tuple[Image.Image, Image.Image]:
        """The original image and the object's alpha placed at its box."""
        if self.originals is not None:
            image = self.originals.get(row["key"])
        else:
            own, _ = self._background(self.pool.row_of_key(row["key"]))
            image = paste_at_box(own, foreground, [int(v) for v in row["box"]])
        # a user's originals may be stored at another size than the source the box refers to
        box = scale_box(row["box"], row["source_size"], image.size)
        mask = Image.new("L", image.size, 0)
        mask.paste(fit_to_box(foreground, box).getchannel("A"), (box[0], box[1]))
        return image, mask

    def _transform_background(self, image, params, generator):
        transform = self.background_transform
        if isinstance(transform, GeometricTransform):
            if params is None:
                return sample_and_apply(transform, image, generator)
            return transform.apply(image, params), params
        return transform(image), {}

    def apply(self, row: dict, params: RecombineParams | dict, epoch: Optional[int] = None) -> dict:
        """Build the sample of foreground `row` from `params` (replay: no new random draws
        except a background transform whose params are not recorded)."""
        if isinstance(params, dict):
            params = RecombineParams.from_dict(params)
        if int(params.idx) != int(row["idx"]):
            raise ValueError(f"`params` were drawn for idx {params.idx}, not for the row with idx {row['idx']}.")
        epoch = self.epoch if epoch is None else int(epoch)
        recorded = params.background_transform or None
        transform_rng = None  # only drawn from when a background transform has no recorded params
        if isinstance(self.background_transform, GeometricTransform) and recorded is None:
            transform_rng = sample_generators(self.seed, epoch, int(row["idx"]))[STREAM_TRANSFORM]
        foreground = to_rgba(decode_image(image_bytes(row["image"]), key=row["key"], what="foreground"))
        post = not self.config.paste_pre_transform and self.background_transform is not None
        if params.use_original:
            image, mask = self._original(row, foreground)
            bg_key, bg_label = row["key"], int(row["label"])
            post = False
        else:
            bg_row = self.pool.row_of_idx(params.bg_idx)
            background, bg_record = self._background(bg_row)
            bg_key, bg_label = bg_record["key"], int(bg_record["label"])
            if post:
                background, recorded = self._transform_background(background, recorded, transform_rng)
            image, mask = paste_foreground(background, foreground, params, rel_jut_out=self.config.rel_jut_out)
        if self.background_transform is not None and not post:
            image, recorded = self._transform_background(image, recorded, transform_rng)
            if isinstance(self.background_transform, GeometricTransform):
                mask = self.background_transform.apply(mask, recorded, is_mask=True)
        if recorded is not None and recorded != params.background_transform:
            params = RecombineParams.from_dict({**params.to_dict(), "background_transform": recorded})
        sample = {"label": int(row["label"]), "fg_key": row["key"], "bg_key": bg_key, "bg_label": bg_label}
        sample.update(self._finish(image, mask))
        if self.return_params:
            sample["params"] = params.to_dict()
        return sample

    def _finish(self, image: Image.Image, mask: Image.Image) -> dict:
        transform = self.image_transform
        out: dict[str, Any] = {}
        if transform is None:
            out["image"] = image
            if self.return_mask:
                out["mask"] = mask
            return out
        if _is_image_processor(transform):
            out["pixel_values"] = transform(images=image, return_tensors="pt")["pixel_values"][0]
            if self.return_mask:
                mask_rgb = mask.convert("RGB")
                values = transform(images=mask_rgb, return_tensors="pt", do_normalize=False)["pixel_values"][0]
                out["mask"] = values[0]
            return out
        result = transform(image)
        out["image" if isinstance(result, Image.Image) else "pixel_values"] = result
        if self.return_mask:
            out["mask"] = _first_channel(transform(mask.convert("RGB")))
        return out

    def recombine(self, row: dict, epoch: Optional[int] = None) -> dict:
        """One sample for foreground `row` at `epoch` (default: the current epoch)."""
        return self.apply(row, self.sample_params(row, epoch), epoch)

    def __call__(self, batch: dict) -> dict:
        """The `set_transform` entry point: a batch of foreground columns -> recombined samples."""
        epoch = self.epoch
        columns = list(batch)
        size = len(batch[columns[0]]) if columns else 0
        samples = [self.recombine({name: batch[name][i] for name in columns}, epoch) for i in range(size)]
        keys = samples[0].keys() if samples else []
        return {name: [sample[name] for sample in samples] for name in keys}
