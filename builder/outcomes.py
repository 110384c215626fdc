"""Per-image outcomes: every source image ends in exactly one place.

``kept`` (rows written in all three data configs), ``no_detection`` (the segmenter found
nothing; no rows), or ``error`` with a reason from :data:`ERROR_REASONS` and a message
(no rows). Outcomes are written per shard (``outcomes/<split>-<i>-of-<N>.json``) and
merged by the finalize step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Optional

__all__ = ["STATUSES", "ERROR_REASONS", "Outcome", "SourceImageError", "count_outcomes"]

STATUSES: tuple[str, ...] = ("kept", "no_detection", "error")

#: Why an image produced no rows, beyond "nothing detected".
ERROR_REASONS: dict[str, str] = {
    "empty_file": "the source file has no bytes",
    "too_large": "the image header declares more pixels than --max-pixels (never decoded)",
    "decode_error": "the bytes are not a decodable image (truncated, corrupt, unknown format)",
    "read_error": "the source could not be read (I/O error)",
    "no_label": "the source has no label for the image",
    "segment_error": "the segmenter raised on this image",
    "select_error": "building or scoring the mask versions failed (classifier included)",
    "inpaint_error": "the inpainter raised on this image",
    "encode_error": "the rows could not be built or encoded",
}


class SourceImageError(Exception):
    """An image that cannot go through the pipeline; `reason` is a key of ERROR_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in ERROR_REASONS:
            raise ValueError(f"Unknown error reason {reason!r}; allowed: {sorted(ERROR_REASONS)}.")
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Outcome:
    """Where one source image ended.

    Attributes:
        idx, key, label: the image (label None when the source has none).
        status: one of STATUSES.
        reason, message: for ``error``: a key of ERROR_REASONS and the error text.
        score, version, num_versions: for ``kept``: the selected version's score, its index
            and how many versions there were.
    """

    idx: int
    key: str
    label: Optional[int]
    status: str
    reason: Optional[str] = None
    message: Optional[str] = None
    score: Optional[float] = None
    version: Optional[int] = None
    num_versions: Optional[int] = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Outcome `status` must be one of {list(STATUSES)}; got {self.status!r}.")
        if (self.status == "error") != (self.reason is not None):
            raise ValueError(f"Outcome of {self.key!r}: `reason` is required for errors and only for errors.")

    def to_json(self) -> dict:
        """A dict without the unset (None) fields."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict) -> "Outcome":
        return cls(**data)


def count_outcomes(outcomes: Iterable[Outcome | dict]) -> dict:
    """``{"kept": n, "no_detection": n, "error": n, "errors_by_reason": {reason: n}}``."""
    statuses: Counter = Counter()
    reasons: Counter = Counter()
    for outcome in outcomes:
        data = outcome.to_json() if isinstance(outcome, Outcome) else outcome
        statuses[data["status"]] += 1
        if data["status"] == "error":
            reasons[data["reason"]] += 1
    counts = {status: statuses.get(status, 0) for status in STATUSES}
    counts["errors_by_reason"] = dict(sorted(reasons.items()))
    return counts
