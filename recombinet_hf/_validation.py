"""Shared argument checks: every error names the argument, the allowed set or range and the value."""

from __future__ import annotations

from typing import Any, Iterable


def check_range(
    name: str,
    value: float,
    lo: float,
    hi: float,
    *,
    lo_inclusive: bool = True,
    hi_inclusive: bool = True,
) -> float:
    """Return `value` if it lies in the range, else raise a ValueError that names `name`."""
    above = value >= lo if lo_inclusive else value > lo
    below = value <= hi if hi_inclusive else value < hi
    if not (above and below):
        left = "[" if lo_inclusive else "("
        right = "]" if hi_inclusive else ")"
        raise ValueError(f"`{name}` out of bounds. Expected inside {left}{lo}, {hi}{right}, got {value!r}.")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return `value` if it is one of `allowed`, else raise a ValueError listing them."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")
    return value
