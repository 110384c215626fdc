"""Image decoding and encoding: every mode (grayscale, CMYK, palette, 16-bit) to RGB/RGBA,
errors that name the row, and the codecs of the release (WebP for foregrounds, JPEG for
backgrounds, PNG for masks)."""

from __future__ import annotations

import io
from typing import Optional

import numpy as np
from PIL import Image, ImageCms, ImageOps

#: Images whose header declares more pixels than this are not decoded (decompression bombs).
MAX_IMAGE_PIXELS = 89_478_485


class ImageDecodeError(ValueError):
    """An image row could not be decoded; the message names the row's key."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB (transparency composited on black is not wanted: it is dropped)."""
    if image.mode == "RGB":
        return image
    if image.mode == "CMYK":
        return _cmyk_to_rgb(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
        return Image.fromarray((array / peak * 255).clip(0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        return Image.fromarray((array.clip(0, 1) * 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGBA").convert("RGB") if image.mode == "P" else image.convert("RGB")


def to_rgba(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGBA, keeping an existing alpha (or palette transparency)."""
    if image.mode == "RGBA":
        return image
    if image.mode in ("LA", "PA", "P", "RGBa", "La"):
        return image.convert("RGBA")
    return to_rgb(image).convert("RGBA")


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    profile = image.info.get("icc_profile")
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken embedded profile: fall back to the naive conversion
    return image.convert("RGB")


def decode_image(data: Optional[bytes], *, key: str, what: str = "image", max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode image bytes fully (EXIF orientation applied); errors name the row `key`."""
    if not data:
        raise ImageDecodeError(f"{what} of row {key!r} is empty (no bytes).")
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise ImageDecodeError(
                f"{what} of row {key!r} declares {width}x{height} = {width * height} pixels, "
                f"more than the limit of {max_pixels}."
            )
        image.load()
        return ImageOps.exif_transpose(image)
    except ImageDecodeError:
        raise
    except Exception as error:  # PIL raises many types for corrupt data
        raise ImageDecodeError(f"{what} of row {key!r} could not be decoded: {type(error).__name__}: {error}") from error


def encode_image(image: Image.Image, format: str, **options) -> bytes:
    """Encode with the release's settings: WebP lossless (exact alpha), JPEG q95, PNG."""
    buffer = io.BytesIO()
    format = format.upper()
    if format == "WEBP":
        image.save(buffer, format="WEBP", lossless=True, exact=True, method=options.get("method", 4))
    elif format == "JPEG":
        image.save(buffer, format="JPEG", quality=options.get("quality", 95))
    elif format == "PNG":
        image.save(buffer, format="PNG", optimize=False)
    else:
        raise ValueError(f"Unsupported release image format {format!r}; expected WEBP, JPEG or PNG.")
    return buffer.getvalue()


def image_bytes(value) -> Optional[bytes]:
    """Bytes of an undecoded `datasets.Image` value (dict with bytes/path), or None."""
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            with open(value["path"], "rb") as handle:
                return handle.read()
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"Expected undecoded image bytes, got {type(value).__name__}.")
