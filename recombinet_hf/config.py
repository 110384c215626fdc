"""Recombination configs and their names.

A name is ``<background>-<size>-pt<threshold>[-<token>...]``, for example
``same-range-pt0.8`` or ``all-range-pt1.0-rot20``. Every name parses into one
:class:`RecombineConfig`, and every config prints one canonical name: defaults
omitted, tokens in a fixed order, numbers in a fixed format.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Union

from ._validation import check_choice, check_range

BackgroundCombination = Literal["same", "all", "orig"]
SizeMode = Literal["range", "min", "max", "mean"]
Schedule = Literal["lin", "revlin", "cos"]

BACKGROUND_COMBINATIONS: tuple[str, ...] = ("same", "all", "orig")
SIZE_MODES: tuple[str, ...] = ("range", "min", "max", "mean")
SCHEDULES: tuple[str, ...] = ("lin", "revlin", "cos")

# Optional tokens in their canonical order: token prefix -> field name.
_TOKENS: dict[str, str] = {
    "rot": "rotation",
    "bates": "fg_bates_n",
    "sig": "mask_smoothing_sigma",
    "jit": "fg_scale_jitter",
    "jut": "rel_jut_out",
    "oip": "orig_img_prob",
    "post": "paste_pre_transform",
}
_ALLOWED_TOKENS = "rot<deg>, bates<n>, batesm<n>, sig<sigma>, jit<j>, jut<r>, oip<p|lin|revlin|cos>, post"
_NUMBER = r"\d+(?:\.\d+)?"
_TOKEN_RE = re.compile(rf"^(?:(rot|sig|jit|jut)({_NUMBER})|(batesm|bates)(\d+)|oip({_NUMBER}|lin|revlin|cos)|(post))$")


def _format_number(value: float) -> str:
    """Fixed number format for names: integers without a point, others shortest round-trip."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return repr(value)


def _format_threshold(value: float) -> str:
    text = _format_number(value)
    return text if "." in text else text + ".0"


@dataclass(frozen=True)
class RecombineConfig:
    """How foregrounds and backgrounds are recombined (the ForAug recipe, every parameter).

    Args:
        background_combination: `"same"` pastes a foreground on a background of its own class,
            `"all"` on a background of any class, `"orig"` on its own inpainted background.
        fg_size_mode: how the target object area is derived from the foreground's and the
            background's own `fg_ratio`: `"range"` (uniform between the two), `"min"`, `"max"`, `"mean"`.
        pruning_threshold: backgrounds whose removed object covered `fg_ratio >= pruning_threshold`
            of the image are not used, in (0, 1]. Classes left with too few backgrounds fall back to
            their lowest-`fg_ratio` ones (see `min_backgrounds_per_class` in `Recombine`).
        rotation: the foreground is rotated by an angle drawn uniformly in `[-rotation, rotation]` degrees.
        fg_bates_n: position of the foreground in the free area, per axis, ~ Bates(n): 1 = uniform,
            larger = more central, 0 = exactly centred, negative = pushed towards the edges.
        mask_smoothing_sigma: Gaussian blur of the alpha edge; the sigma of each sample is drawn in
            `[0.1, 1] * mask_smoothing_sigma`; 0 disables it.
        fg_scale_jitter: the target area is drawn from `[lo * (1 - j), hi * (1 + j)]`, in [0, 1).
        rel_jut_out: fraction of the foreground's width/height allowed to leave the canvas, in [0, 1).
        orig_img_prob: probability of returning the original image instead: a number in [0, 1] or a
            schedule over epochs, `"lin"` (0 -> 1), `"revlin"` (1 -> 0) or `"cos"` (0 -> 1, slow start).
        paste_pre_transform: `True` pastes at full resolution before the user's transform; `False`
            (token `post`) applies the background transform first and pastes onto its output (cheaper).
    """

    background_combination: BackgroundCombination = "all"
    fg_size_mode: SizeMode = "range"
    pruning_threshold: float = 0.8
    rotation: float = 0.0
    fg_bates_n: int = 1
    mask_smoothing_sigma: float = 4.0
    fg_scale_jitter: float = 0.3
    rel_jut_out: float = 0.0
    orig_img_prob: Union[float, Schedule] = 0.0
    paste_pre_transform: bool = True

    def __post_init__(self) -> None:
        check_choice("background_combination", self.background_combination, BACKGROUND_COMBINATIONS)
        check_choice("fg_size_mode", self.fg_size_mode, SIZE_MODES)
        check_range("pruning_threshold", self.pruning_threshold, 0.0, 1.0, lo_inclusive=False)
        check_range("rotation", self.rotation, 0.0, 180.0)
        if isinstance(self.fg_bates_n, bool) or not float(self.fg_bates_n).is_integer():
            raise ValueError(f"`fg_bates_n` must be an integer, got {self.fg_bates_n!r}.")
        object.__setattr__(self, "fg_bates_n", int(self.fg_bates_n))
        check_range("mask_smoothing_sigma", self.mask_smoothing_sigma, 0.0, math.inf)
        check_range("fg_scale_jitter", self.fg_scale_jitter, 0.0, 1.0, hi_inclusive=False)
        check_range("rel_jut_out", self.rel_jut_out, 0.0, 1.0, hi_inclusive=False)
        if isinstance(self.orig_img_prob, str):
            check_choice("orig_img_prob", self.orig_img_prob, SCHEDULES)
        else:
            check_range("orig_img_prob", self.orig_img_prob, 0.0, 1.0)
        for name in ("pruning_threshold", "rotation", "mask_smoothing_sigma", "fg_scale_jitter", "rel_jut_out"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not isinstance(self.orig_img_prob, str):
            object.__setattr__(self, "orig_img_prob", float(self.orig_img_prob))
        object.__setattr__(self, "paste_pre_transform", bool(self.paste_pre_transform))

    @property
    def name(self) -> str:
        """The canonical config name, e.g. ``same-range-pt0.8-rot20``."""
        parts = [self.background_combination, self.fg_size_mode, "pt" + _format_threshold(self.pruning_threshold)]
        defaults = RecombineConfig.__dataclass_fields__
        for token, field_name in _TOKENS.items():
            value = getattr(self, field_name)
            if value == defaults[field_name].default:
                continue
            if token == "post":
                parts.append("post")
            elif token == "bates":
                parts.append(f"batesm{-value}" if value < 0 else f"bates{value}")
            elif token == "oip" and isinstance(value, str):
                parts.append("oip" + value)
            else:
                parts.append(token + _format_number(value))
        return "-".join(parts)

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "RecombineConfig":
        """Parse a config name; keyword `overrides` set further parameters.

        A keyword that contradicts a token written in the name is an error, as is an
        unknown token or value.
        """
        explicit = _parse_name(name)
        fields = {f.name for f in dataclasses.fields(cls)}
        for key, value in overrides.items():
            if key not in fields:
                raise ValueError(f"Unknown recombination parameter `{key}`; allowed: {sorted(fields)}.")
            if key in explicit and explicit[key] != value:
                raise ValueError(
                    f"`{key}={value!r}` contradicts the config name {name!r}, which sets {key}={explicit[key]!r}."
                )
        return cls(**{**explicit, **overrides})

    def replace(self, **changes: Any) -> "RecombineConfig":
        """A copy with some parameters changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _parse_name(name: str) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"A recombination config name must be a non-empty string, got {name!r}.")
    parts = name.split("-")
    if len(parts) < 3:
        raise ValueError(
            f"Config name {name!r} must look like <background>-<size>-pt<threshold>[-<token>...], "
            "e.g. 'same-range-pt0.8'."
        )
    background, size, threshold, *tokens = parts
    check_choice("background (first part of the config name)", background, BACKGROUND_COMBINATIONS)
    check_choice("size mode (second part of the config name)", size, SIZE_MODES)
    match = re.fullmatch(rf"pt({_NUMBER})", threshold)
    if match is None:
        raise ValueError(f"Third part of config name {name!r} must be pt<threshold> in (0, 1], e.g. pt0.8; got {threshold!r}.")
    values: dict[str, Any] = {
        "background_combination": background,
        "fg_size_mode": size,
        "pruning_threshold": float(match.group(1)),
    }
    for token in tokens:
        match = _TOKEN_RE.match(token)
        if match is None:
            raise ValueError(f"Unknown token {token!r} in config name {name!r}; allowed tokens: {_ALLOWED_TOKENS}.")
        number_prefix, number, bates_prefix, bates_n, oip, post = match.groups()
        if number_prefix:
            key, value = _TOKENS[number_prefix], float(number)
        elif bates_prefix:
            key, value = "fg_bates_n", -int(bates_n) if bates_prefix == "batesm" else int(bates_n)
        elif oip is not None:
            key, value = "orig_img_prob", oip if oip in SCHEDULES else float(oip)
        else:
            key, value = "paste_pre_transform", False
        if key in values:
            raise ValueError(f"Config name {name!r} sets `{key}` twice.")
        values[key] = value
    return values
