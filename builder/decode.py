"""Source bytes -> RGB image, or a :class:`SourceImageError` with the reason it failed.

The header is read first and an image declaring more than `max_pixels` pixels is refused
as ``too_large`` before any pixel is decoded (decompression bombs). Other modes
(grayscale, CMYK, palette, 16-bit) are converted to RGB by `recombinet_hf.images.to_rgb`.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from recombinet_hf.images import MAX_IMAGE_PIXELS, ImageDecodeError, decode_image, to_rgb

from .outcomes import SourceImageError

__all__ = ["declared_size", "load_rgb"]


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header without decoding pixels; None if unreadable.

    Raises SourceImageError(``too_large``) when PIL itself refuses the header as a
    decompression bomb (more than twice its own pixel limit).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError as error:
        raise SourceImageError("too_large", str(error)) from error
    except Exception:  # corrupt or unknown format: decode_image names it below
        return None


def load_rgb(data: bytes, *, key: str, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode `data` (image `key`) to a fully loaded RGB PIL image.

    Raises SourceImageError with reason ``empty_file``, ``too_large`` or ``decode_error``.
    """
    if not data:
        raise SourceImageError("empty_file", f"image {key!r} is empty (0 bytes).")
    size = declared_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise SourceImageError(
            "too_large",
            f"image {key!r} declares {size[0]}x{size[1]} = {size[0] * size[1]} pixels, "
            f"more than the limit of {max_pixels} (--max-pixels); not decoded.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = decode_image(data, key=key, max_pixels=max_pixels)
        rgb = to_rgb(image)
        rgb.load()
        return rgb
    except ImageDecodeError as error:
        raise SourceImageError("decode_error", str(error)) from error
    except Exception as error:  # a conversion failure (broken CMYK profile, odd mode)
        raise SourceImageError("decode_error", f"image {key!r} could not be converted to RGB: {type(error).__name__}: {error}") from error
