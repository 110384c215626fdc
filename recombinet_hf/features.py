"""The release schema, declared once: the builder casts to it, the loader checks against it,
the card lists it.

`FORMAT_VERSION` is written to `recombinet.json`; the loader refuses releases whose
format it does not know.
"""

from __future__ import annotations

from typing import Sequence

from datasets import ClassLabel, Features, Image, List, Value

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)

SPLITS: tuple[str, ...] = ("train", "validation")
DATA_CONFIGS: tuple[str, ...] = ("foregrounds", "backgrounds", "masks")

#: Recombination configs listed in every release for discovery (plus any the builder is asked for).
DEFAULT_RECOMBINATION_CONFIGS: tuple[str, ...] = (
    "same-range-pt0.8",
    "all-range-pt0.8",
    "same-range-pt1.0",
    "all-range-pt1.0",
    "all-range-pt0.8-rot20",
)

#: Per-column documentation, shown on the card.
COLUMN_DOCS: dict[str, str] = {
    "idx": "stable position of the source image in the sorted source order (seeds recombination)",
    "key": "source image id",
    "label": "class label",
    "image": "foregrounds: RGBA crop to the object's box (WebP, exact alpha); backgrounds: RGB with the object inpainted (JPEG)",
    "box": "object box [x0, y0, x1, y1] in source pixels (x1, y1 exclusive)",
    "source_size": "source image size [width, height]",
    "fg_ratio": "object area / source image area",
    "alpha_coverage": "mean alpha / 255 of the foreground crop",
    "score": "score of the selected mask version",
    "mask": "object mask at source size (L, PNG, 0 or 255)",
}


def _int_pair(length: int) -> List:
    return List(Value("int32"), length=length)


def release_features(config: str, class_names: Sequence[str]) -> Features:
    """The `Features` of a data config (`foregrounds`, `backgrounds`, `masks`)."""
    label = ClassLabel(names=list(class_names))
    common = {"idx": Value("int64"), "key": Value("string"), "label": label}
    if config == "foregrounds":
        return Features(
            {
                **common,
                "image": Image(),
                "box": _int_pair(4),
                "source_size": _int_pair(2),
                "fg_ratio": Value("float32"),
                "alpha_coverage": Value("float32"),
                "score": Value("float32"),
            }
        )
    if config == "backgrounds":
        return Features({**common, "image": Image(), "fg_ratio": Value("float32"), "source_size": _int_pair(2)})
    if config == "masks":
        return Features({**common, "mask": Image(), "box": _int_pair(4)})
    raise ValueError(f"Unknown data config {config!r}; data configs are {list(DATA_CONFIGS)}.")


def check_columns(config: str, features: Features, *, where: str) -> None:
    """Raise a ValueError naming `where` if a column of the schema is missing or has another type."""
    expected = release_features(config, ["_"])
    missing = [name for name in expected if name not in features]
    if missing:
        raise ValueError(f"{where}: config {config!r} is missing column(s) {missing}; expected columns {list(expected)}.")
    for name, feature in expected.items():
        actual = features[name]
        if type(actual) is not type(feature):
            raise ValueError(
                f"{where}: column {name!r} of config {config!r} has type {type(actual).__name__}, "
                f"expected {type(feature).__name__}."
            )
