"""Where original images come from: a user-given `source=` matched by key, or a reconstruction
(the foreground pasted back at its box on its own background)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Union

from PIL import Image

if TYPE_CHECKING:
    import datasets

from .images import decode_image, image_bytes, to_rgb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}

Source = Union[str, os.PathLike, "datasets.Dataset", Mapping[str, Image.Image], Callable[[str], Image.Image]]


class OriginalImages:
    """Look up an original image by its source key.

    `source` may be a folder (files found recursively, matched by file stem, e.g. an ImageNet
    folder), a `datasets.Dataset` with `key` and `image` columns, a mapping key -> PIL image,
    or a callable key -> PIL image.
    """

    def __init__(self, source: Source) -> None:
        self._lookup: Callable[[str], Image.Image]
        if callable(source) and not isinstance(source, Mapping) and not hasattr(source, "column_names"):
            self._lookup = source
        elif isinstance(source, Mapping):
            self._lookup = source.__getitem__
        elif hasattr(source, "column_names"):
            missing = [name for name in ("key", "image") if name not in source.column_names]
            if missing:
                raise ValueError(f"`source` dataset lacks column(s) {missing}; it needs `key` and `image`.")
            self._dataset = source
            self._rows = {key: row for row, key in enumerate(source["key"])}
            self._lookup = self._from_dataset
        else:
            folder = Path(source)
            if not folder.is_dir():
                raise ValueError(f"`source` folder {str(folder)!r} does not exist.")
            self._paths = {
                path.stem: path for path in sorted(folder.rglob("*")) if path.suffix.lower() in IMAGE_SUFFIXES
            }
            self._lookup = self._from_folder

    def _from_dataset(self, key: str) -> Image.Image:
        value = self._dataset[self._rows[key]]["image"]
        return value if isinstance(value, Image.Image) else decode_image(image_bytes(value), key=key)

    def _from_folder(self, key: str) -> Image.Image:
        path = self._paths[key]
        return decode_image(path.read_bytes(), key=key, what=f"original image {path}")

    def get(self, key: str) -> Image.Image:
        try:
            return to_rgb(self._lookup(key))
        except KeyError:
            raise KeyError(f"The original image of key {key!r} is not in `source`.") from None


def resolve_source(source: Optional[Source]) -> Optional[OriginalImages]:
    return None if source is None else OriginalImages(source)
