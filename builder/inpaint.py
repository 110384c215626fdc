"""Inpainters that remove the object from a photo, and the mask dilation before them.

An inpainter fills exactly the mask it is given; growing the object mask first
is the caller's job (the builder calls `dilate_mask`), because a segmenter's
mask hugs the object and would leave its outline (fur, soft edges, shadow
fringe) in the background. Both inpainters return the source pixels
unchanged outside the mask.

* ``telea`` (default): OpenCV's Telea fast-marching inpainting. CPU, no model,
  fine for the small holes of object-centric photos at their resolution.
* ``lama``: a TorchScript LaMa (e.g. ``big-lama.pt``) loaded from a local file
  (``model_path=``) or from the Hugging Face Hub (``repo_id=`` + ``filename=``,
  default ``fashn-ai/LaMa`` / ``big-lama.pt``; that default is NOT exercised
  by the offline tests, which use a small scripted module with the same
  contract). Contract of the file: ``model(image, mask) -> image`` with image
  ``[1, 3, H, W]`` float 0..1, mask ``[1, 1, H, W]`` float {0, 1} (1 = fill),
  H and W multiples of 8, output ``[1, 3, H, W]`` in 0..1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from recombinet_hf._files import sha256_file

from .backends import INPAINTERS, check_options

__all__ = [
    "default_dilation_radius",
    "dilate_mask",
    "TeleaInpainter",
    "LamaInpainter",
    "create_telea",
    "create_lama",
    "DEFAULT_LAMA_REPO_ID",
    "DEFAULT_LAMA_FILENAME",
]

#: Dilation radius as a fraction of the image diagonal, and its floor in pixels.
DILATION_FRACTION = 0.015
MIN_DILATION_RADIUS = 3
#: Hub default for `lama` (not tested offline).
DEFAULT_LAMA_REPO_ID = "fashn-ai/LaMa"
DEFAULT_LAMA_FILENAME = "big-lama.pt"
#: LaMa needs spatial sizes that are multiples of this.
LAMA_MULTIPLE = 8


def _as_mask(mask: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{what}: the mask must be a 2-D (height, width) array; got shape {array.shape}.")
    if array.dtype != bool:
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise ValueError(f"{what}: the mask must be bool (or 0/1 numbers); got dtype {array.dtype}.")
        array = array > 0.5 if np.issubdtype(array.dtype, np.floating) else array != 0
    return array


def default_dilation_radius(height: int, width: int) -> int:
    """``max(3, round(0.015 * diagonal))`` pixels: 11 px at 512x512, 17 px at 960x643.

    1.5 % of the diagonal covers the soft edge and the mask's boundary error of
    a salient-object / text-prompted segmenter at ImageNet resolutions, so no
    outline of the object survives inpainting; the 3 px floor keeps it useful
    on thumbnails.
    """
    return max(MIN_DILATION_RADIUS, int(round(DILATION_FRACTION * math.hypot(height, width))))


def dilate_mask(mask: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Grow a bool mask by `radius` pixels (Euclidean disk); returns a new bool array.

    A pixel is in the result when it lies within `radius` pixels (exact
    Euclidean distance) of a True pixel of `mask`. `radius=None` uses
    `default_dilation_radius` of the mask's shape; 0 returns a copy. Pure:
    `mask` is not modified.
    """
    import cv2

    array = _as_mask(mask, "dilate_mask")
    if radius is None:
        radius = default_dilation_radius(*array.shape)
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"dilate_mask option `radius` must be an int >= 0 or None; got {radius!r}.")
    if radius == 0 or not array.any() or array.all():
        return array.copy()
    # distance of every pixel to the nearest True pixel of `mask` (zero pixels of the input)
    distance = cv2.distanceTransform((~array).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance <= float(radius)


def _check_image_mask(backend: str, image: Image.Image, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(image, Image.Image):
        raise TypeError(f"{backend}.inpaint: `image` must be a PIL image; got {type(image).__name__}.")
    rgb = np.array(image.convert("RGB"))  # a writable copy (torch.from_numpy wants one)
    array = _as_mask(mask, f"{backend}.inpaint")
    if array.shape != rgb.shape[:2]:
        raise ValueError(
            f"{backend}.inpaint: mask shape {array.shape} does not match the image's (height, width) "
            f"{rgb.shape[:2]}."
        )
    return rgb, array


class TeleaInpainter:
    """OpenCV Telea inpainting (``cv2.inpaint(..., cv2.INPAINT_TELEA)``).

    Args:
        radius: neighbourhood radius in pixels that each filled pixel draws
            from (OpenCV's ``inpaintRadius``), an int >= 1; default 5.
    """

    name = "telea"

    def __init__(self, *, radius: int = 5) -> None:
        import cv2

        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 1:
            raise ValueError(f"telea option `radius` must be an int >= 1; got {radius!r}.")
        self.radius = radius
        self.version = {"backend": "telea", "radius": radius, "opencv": cv2.__version__}

    def inpaint(self, image: Image.Image, mask: np.ndarray) -> Image.Image:
        """Fill `mask` (True = remove) in RGB `image`; pixels outside it are kept exactly."""
        import cv2

        rgb, array = _check_image_mask(self.name, image, mask)
        if not array.any():
            return Image.fromarray(rgb.copy())
        filled = cv2.inpaint(np.ascontiguousarray(rgb), array.astype(np.uint8) * 255, self.radius, cv2.INPAINT_TELEA)
        return Image.fromarray(np.where(array[..., None], filled, rgb))


class LamaInpainter:
    """A TorchScript LaMa; see the module docstring for the model contract.

    Args:
        model_path: a local TorchScript file. Excludes `repo_id` / `filename`.
        repo_id, filename, revision: Hub location resolved with
            ``huggingface_hub.hf_hub_download`` when `model_path` is not given;
            defaults ``fashn-ai/LaMa``, ``big-lama.pt`` (not tested offline).
        device: ``"auto"`` (CUDA when available, else CPU) or a torch device
            string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
    """

    name = "lama"

    def __init__(
        self,
        *,
        model_path: str | os.PathLike | None = None,
        repo_id: str | None = None,
        filename: str | None = None,
        revision: str | None = None,
        device: str = "auto",
    ) -> None:
        import torch

        if model_path is not None and (repo_id is not None or filename is not None or revision is not None):
            raise ValueError("lama: give either option `model_path` or `repo_id`/`filename`/`revision`, not both.")
        if model_path is not None:
            path = Path(model_path).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"lama option `model_path`: no such file {str(path)!r} (want a TorchScript .pt).")
            source = str(path)
        else:
            repo_id = repo_id or DEFAULT_LAMA_REPO_ID
            filename = filename or DEFAULT_LAMA_FILENAME
            try:
                from huggingface_hub import hf_hub_download

                path = Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision))
            except Exception as error:
                raise RuntimeError(
                    f"lama: could not get `{filename}` from Hugging Face repo `{repo_id}`"
                    f"{f' at revision {revision}' if revision else ''} ({type(error).__name__}: {error}). "
                    "Download it by hand and pass model_path=..., or check the options repo_id/filename."
                ) from error
            source = f"hf://{repo_id}/{filename}" + (f"@{revision}" if revision else "")

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"lama option `device` must be 'auto' or a torch device like 'cpu'/'cuda:0'; got {device!r}.") from error
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"lama option `device={device!r}`: torch sees no CUDA device; use device='cpu' or 'auto'.")
        try:
            self._model = torch.jit.load(str(path), map_location=self.device).eval()
        except Exception as error:
            raise RuntimeError(
                f"lama: cannot load {str(path)!r} as TorchScript ({type(error).__name__}: {error}); "
                "the file must be saved with torch.jit.save (e.g. big-lama.pt)."
            ) from error
        self.model_path = path
        self.version = {
            "backend": "lama",
            "model": path.name,
            "source": source,
            "sha256": sha256_file(path),
            "torch": torch.__version__,
        }

    def inpaint(self, image: Image.Image, mask: np.ndarray) -> Image.Image:
        """Fill `mask` (True = remove) in RGB `image`; pixels outside it are kept exactly.

        The image and mask are reflect-padded at the bottom/right to multiples
        of 8 and the output is cropped back.
        """
        import torch
        import torch.nn.functional as F

        rgb, array = _check_image_mask(self.name, image, mask)
        if not array.any():
            return Image.fromarray(rgb.copy())
        height, width = array.shape
        pad_h, pad_w = (-height) % LAMA_MULTIPLE, (-width) % LAMA_MULTIPLE
        # reflect padding needs pad < size; tiny images fall back to edge replication
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        with torch.inference_mode():
            x = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
            m = torch.from_numpy(array).to(self.device)[None, None].float()
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
                m = F.pad(m, (0, pad_w, 0, pad_h), mode=mode)
            out = self._model(x, m)
            expected = (1, 3, height + pad_h, width + pad_w)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise RuntimeError(
                    f"lama: model {self.model_path.name} returned {got}; the contract is a tensor of shape {expected} "
                    "(same as the padded image input) with values in 0..1."
                )
            out = out[0, :, :height, :width].float().clamp_(0.0, 1.0).mul_(255.0).round_()
            filled = out.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(np.where(array[..., None], filled, rgb))


@INPAINTERS.register("telea")
def create_telea(**options) -> TeleaInpainter:
    """Registry factory: ``INPAINTERS.create("telea", radius=5)``."""
    check_options("telea", options, TeleaInpainter)
    return TeleaInpainter(**options)


@INPAINTERS.register("lama")
def create_lama(**options) -> LamaInpainter:
    """Registry factory: ``INPAINTERS.create("lama", model_path=...)`` or ``repo_id=``/``filename=``."""
    check_options("lama", options, LamaInpainter)
    return LamaInpainter(**options)
