"""The `grounded-sam` segmenter: GroundingDINO boxes from text, then box-prompted SAM.

The published Grounded-SAM recipe, run through `transformers`:

1. GroundingDINO (zero-shot detection) gets one text per image, that image's
   prompts joined as ``"a goldfish. a cyprinid."``; its boxes are kept with the
   processor's grounded-object-detection post-processing (box threshold 0.3,
   text threshold 0.25), and the best `max_boxes` are kept.
2. SAM gets those boxes as prompts (all boxes of one image in one decoder
   call); for each box the best of SAM's 3 candidate masks by predicted IoU
   is kept (never their union), upscaled to the source image size with the
   SAM processor's `post_process_masks`.
3. Each mask is refined to its largest external contour, filled.

Each kept box becomes a `Candidate` with ``score = box_score * sam_iou`` and
the prompt its box was matched to: the prompt whose tokens (the sub-sentence
between two ``.`` delimiters, as GroundingDINO groups them) hold the box's
highest token probability.

The defaults, ``IDEA-Research/grounding-dino-base`` and ``facebook/sam-vit-huge``,
are the real models from the Hugging Face Hub; they are not exercised by the
offline tests, which run the same code on tiny random-weight models saved to
disk. Any model id or local directory holding the same files works.

Only the PIL image processors (`GroundingDinoImageProcessorPil`,
`SamImageProcessorPil`) are used: the torchvision-backed processors and the
``mask-generation`` pipeline need torchvision, which the builder does not
require. `torch` and `transformers` are imported when the segmenter is built,
so importing this module is cheap.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from .backends import SEGMENTERS, Candidate

__all__ = [
    "GroundedSamSegmenter",
    "DEFAULT_DETECTOR",
    "DEFAULT_SAM",
    "join_prompts",
    "select_best_masks",
    "largest_contour_mask",
]

#: GroundingDINO checkpoint used by default (Swin-B backbone).
DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-base"
#: SAM checkpoint used by default (ViT-H image encoder).
DEFAULT_SAM = "facebook/sam-vit-huge"

_INSTALL_HINT = (
    "The `grounded-sam` segmenter needs torch, transformers and opencv; "
    "install them with `pip install recombinet[builder]`."
)
# GroundingDINO splits its text into sub-sentences at these characters.
_DELIMITERS = re.compile(r"[.?]")


def _normalise_prompt(prompt: str) -> str:
    """Lower-case, strip, and remove GroundingDINO's sentence delimiters."""
    return " ".join(_DELIMITERS.sub(" ", str(prompt)).lower().split())


def join_prompts(prompts: Sequence[str]) -> tuple[str, list[int]]:
    """GroundingDINO's text for one image, and which prompt each phrase is.

    Prompts are lower-cased and stripped of ``.``/``?`` (they delimit phrases);
    empty and repeated prompts are dropped. Returns the text, e.g.
    ``"a goldfish. a cyprinid."``, and for each of its phrases, in order, the
    index of the prompt in `prompts` it came from.
    """
    seen: set[str] = set()
    phrases: list[str] = []
    origin: list[int] = []
    for index, prompt in enumerate(prompts):
        phrase = _normalise_prompt(prompt)
        if phrase and phrase not in seen:
            seen.add(phrase)
            phrases.append(phrase)
            origin.append(index)
    text = ". ".join(phrases) + "." if phrases else ""
    return text, origin


def select_best_masks(masks, iou_scores):
    """SAM's best candidate mask per prompt, by predicted IoU.

    Args:
        masks: ``(num_prompts, num_candidates, H, W)`` tensor or array (logits or
            booleans) from SAM with ``multimask_output=True``.
        iou_scores: ``(num_prompts, num_candidates)`` predicted IoU per candidate.

    Returns:
        ``(best_masks, best_iou)``: the ``(num_prompts, H, W)`` candidate with the
        highest predicted IoU for each prompt, and that IoU, ``(num_prompts,)``.
        One candidate is selected, never the union of the candidates.
    """
    if masks.shape[:2] != iou_scores.shape[:2] or len(iou_scores.shape) != 2:
        raise ValueError(
            f"masks {tuple(masks.shape)} and iou_scores {tuple(iou_scores.shape)} do not match: "
            "expected (N, C, H, W) and (N, C)."
        )
    best = iou_scores.argmax(-1)
    if isinstance(masks, np.ndarray):
        best = np.asarray(best)
        rows = np.arange(masks.shape[0])
        return masks[rows, best], np.asarray(iou_scores)[rows, best]
    import torch  # lazily, so this module stays light

    rows = torch.arange(masks.shape[0], device=iou_scores.device)
    best_iou = iou_scores[rows, best]
    return masks[rows.to(masks.device), best.to(masks.device)], best_iou


def largest_contour_mask(mask: np.ndarray) -> np.ndarray:
    """The largest external contour of `mask`, filled (the published refinement).

    Holes are filled and every region but the largest is dropped. An empty
    mask stays empty.
    """
    try:
        import cv2
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(_INSTALL_HINT) from error

    mask_u8 = np.ascontiguousarray(np.asarray(mask, dtype=bool), dtype=np.uint8)
    contours, _ = cv2.findContours(mask_u8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    refined = np.zeros_like(mask_u8)
    if contours:
        largest = max(contours, key=cv2.contourArea)
        cv2.fillPoly(refined, [largest], 1)
    return refined.astype(bool)


def _resolve_dtype(torch, dtype):
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"Unknown torch dtype `{dtype}`.")
        return resolved
    return dtype


def _revisions(revision) -> tuple[str | None, str | None]:
    if revision is None or isinstance(revision, str):
        return revision, revision
    if isinstance(revision, Mapping):
        unknown = set(revision) - {"detector", "sam"}
        if unknown:
            raise ValueError(f"revision keys must be `detector` and/or `sam`, got {sorted(unknown)}.")
        return revision.get("detector"), revision.get("sam")
    raise TypeError("revision must be None, a string, or a mapping with `detector`/`sam` keys.")


class GroundedSamSegmenter:
    """Text-prompted segmentation: GroundingDINO boxes refined into SAM masks.

    Args:
        detector: GroundingDINO model id or local directory (model, image
            processor and tokenizer). Defaults to the real
            ``IDEA-Research/grounding-dino-base`` (not tested offline).
        sam: SAM model id or local directory (model and image processor).
            Defaults to the real ``facebook/sam-vit-huge`` (not tested offline).
        revision: Hub revision: one string for both models, or a mapping
            ``{"detector": ..., "sam": ...}``; None for the default branch.
        box_threshold: minimum GroundingDINO box score (0.3 in the recipe).
        text_threshold: token threshold for the post-processed phrases (0.25).
        max_boxes: keep at most this many boxes (highest scores) per image.
        batch_size: images per forward pass.
        device: torch device; default ``cuda`` when available, else ``cpu``.
        dtype: torch dtype (or its name) for the models; default float32.
    """

    name = "grounded-sam"

    def __init__(
        self,
        detector: str = DEFAULT_DETECTOR,
        sam: str = DEFAULT_SAM,
        revision: str | Mapping[str, str] | None = None,
        box_threshold: float = 0.3,
        text_threshold: float = 0.25,
        max_boxes: int = 3,
        batch_size: int = 8,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        try:
            import torch
            import transformers
            from transformers import (
                AutoTokenizer,
                GroundingDinoForObjectDetection,
                GroundingDinoImageProcessorPil,
                GroundingDinoProcessor,
                SamImageProcessorPil,
                SamModel,
                SamProcessor,
            )
        except ImportError as error:
            raise ImportError(_INSTALL_HINT) from error

        if max_boxes < 1:
            raise ValueError("max_boxes must be at least 1.")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1.")

        self._torch = torch
        self.detector_id = str(detector)
        self.sam_id = str(sam)
        self.revision = revision
        self.box_threshold = float(box_threshold)
        self.text_threshold = float(text_threshold)
        self.max_boxes = int(max_boxes)
        self.batch_size = int(batch_size)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _resolve_dtype(torch, dtype)
        detector_revision, sam_revision = _revisions(revision)

        # GroundingDinoProcessor = PIL image processor + BERT tokenizer, built
        # from its pieces so the torchvision-backed processor is never chosen.
        self.detector_processor = GroundingDinoProcessor(
            image_processor=GroundingDinoImageProcessorPil.from_pretrained(
                self.detector_id, revision=detector_revision
            ),
            tokenizer=AutoTokenizer.from_pretrained(self.detector_id, revision=detector_revision),
        )
        self.detector = GroundingDinoForObjectDetection.from_pretrained(
            self.detector_id, revision=detector_revision
        )
        self.detector.to(device=self.device, dtype=self.dtype).eval()

        self.sam_processor = SamProcessor(
            image_processor=SamImageProcessorPil.from_pretrained(self.sam_id, revision=sam_revision)
        )
        self.sam = SamModel.from_pretrained(self.sam_id, revision=sam_revision)
        self.sam.to(device=self.device, dtype=self.dtype).eval()

        tokenizer = self.detector_processor.tokenizer
        self._max_text_len = int(self.detector.config.max_text_len)
        self._delimiter_ids = {
            tokenizer.convert_tokens_to_ids(token)
            for token in (".", "?", tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token)
            if token is not None
        }

        self.version = {
            "backend": self.name,
            "detector": self.detector_id,
            "sam": self.sam_id,
            "revision": revision if not isinstance(revision, Mapping) else dict(revision),
            "box_threshold": self.box_threshold,
            "text_threshold": self.text_threshold,
            "max_boxes": self.max_boxes,
            "transformers": transformers.__version__,
        }

    # ------------------------------------------------------------------ API

    def segment(
        self, images: Sequence[Image.Image], prompts: Sequence[Sequence[str]]
    ) -> list[list[Candidate]]:
        """Per image, up to `max_boxes` candidates (best box score first).

        `prompts[i]` are the text prompts of image `i` (e.g. a class's names);
        each candidate carries the one of them its box matched. Images without
        a usable prompt, and boxes whose refined SAM mask is empty, yield no
        candidate.
        """
        if len(images) != len(prompts):
            raise ValueError(f"Got {len(images)} images but {len(prompts)} prompt lists.")
        if isinstance(prompts, str) or any(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be one list of strings per image, not a string.")

        results: list[list[Candidate]] = [[] for _ in images]
        # An image without a usable prompt has nothing to detect.
        jobs = []
        for index, (image, image_prompts) in enumerate(zip(images, prompts)):
            text, origin = join_prompts(image_prompts)
            if text:
                jobs.append((index, image, text, list(image_prompts), origin))

        with self._torch.inference_mode():
            for start in range(0, len(jobs), self.batch_size):
                chunk = jobs[start : start + self.batch_size]
                for (index, *_), candidates in zip(chunk, self._segment_chunk(chunk)):
                    results[index] = candidates
        return results

    # ------------------------------------------------------------ internals

    def _segment_chunk(self, chunk) -> list[list[Candidate]]:
        images = [job[1] if job[1].mode == "RGB" else job[1].convert("RGB") for job in chunk]
        detections = self._detect(images, [job[2] for job in chunk])

        out: list[list[Candidate]] = [[] for _ in chunk]
        with_boxes = [i for i, det in enumerate(detections) if len(det["boxes"])]
        if not with_boxes:
            return out

        sam_inputs = self.sam_processor(images=[images[i] for i in with_boxes], return_tensors="pt")
        embeddings = self.sam.get_image_embeddings(
            sam_inputs["pixel_values"].to(device=self.device, dtype=self.dtype)
        )
        original_sizes = sam_inputs["original_sizes"]
        reshaped_sizes = sam_inputs["reshaped_input_sizes"]

        for row, i in enumerate(with_boxes):
            _, _, _, image_prompts, origin = chunk[i]
            det = detections[i]
            (orig_h, orig_w), (new_h, new_w) = original_sizes[row].tolist(), reshaped_sizes[row].tolist()
            # Source pixels -> SAM's resized input frame (as SamProcessor does).
            scale = det["boxes"].new_tensor([new_w / orig_w, new_h / orig_h, new_w / orig_w, new_h / orig_h])
            boxes = (det["boxes"] * scale)[None].to(device=self.device, dtype=self.dtype)
            sam_out = self.sam(
                image_embeddings=embeddings[row : row + 1], input_boxes=boxes, multimask_output=True
            )
            best_masks, best_iou = select_best_masks(sam_out.pred_masks[0], sam_out.iou_scores[0])
            masks = self.sam_processor.post_process_masks(
                [best_masks[:, None].float().cpu()],
                original_sizes[row : row + 1],
                reshaped_sizes[row : row + 1],
            )[0][:, 0].numpy()

            for mask, box_score, iou, phrase in zip(
                masks, det["scores"].tolist(), best_iou.float().cpu().tolist(), det["phrases"]
            ):
                refined = largest_contour_mask(mask)
                if not refined.any():
                    continue  # SAM found nothing in this box
                score = float(np.clip(box_score * iou, 0.0, 1.0))
                prompt = image_prompts[origin[min(phrase, len(origin) - 1)]]
                out[i].append(Candidate(mask=refined, score=score, prompt=prompt))
        return out

    def _detect(self, images: list[Image.Image], texts: list[str]) -> list[dict]:
        """GroundingDINO on one chunk: per image the kept boxes (source pixels,
        xyxy), their scores and the index of the phrase each one matched."""
        torch = self._torch
        inputs = self.detector_processor(
            images=images,
            text=texts,
            padding="longest",
            truncation=True,
            max_length=self._max_text_len,
            return_tensors="pt",
        )
        model_inputs = {
            key: value.to(self.device, dtype=self.dtype) if key == "pixel_values" else value.to(self.device)
            for key, value in inputs.items()
        }
        outputs = self.detector(**model_inputs)
        logits = outputs.logits.float()
        input_ids = inputs["input_ids"]
        sizes = [(image.height, image.width) for image in images]

        processed = self.detector_processor.post_process_grounded_object_detection(
            SimpleNamespace(logits=logits, pred_boxes=outputs.pred_boxes.float()),
            input_ids=input_ids,
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=sizes,
        )

        # Which queries the post-processing kept (score > threshold, in query
        # order), computed the same way, to map each box to its phrase.
        probs = torch.sigmoid(logits)
        kept = (torch.max(probs, dim=-1)[0] > self.box_threshold).cpu()
        probs = probs.cpu()
        detections = []
        for b, (result, (height, width)) in enumerate(zip(processed, sizes)):
            kept_queries = torch.nonzero(kept[b]).flatten()
            scores = result["scores"].float().cpu()
            boxes = result["boxes"].float().cpu()
            if len(kept_queries) != len(scores):  # pragma: no cover - defensive
                raise RuntimeError("GroundingDINO post-processing kept an unexpected number of boxes.")
            order = torch.argsort(scores, descending=True)[: self.max_boxes]
            boxes = boxes[order]
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
            phrases = self._match_phrases(probs[b, kept_queries[order]], input_ids[b])
            detections.append({"boxes": boxes, "scores": scores[order], "phrases": phrases})
        return detections

    def _match_phrases(self, query_probs, input_ids) -> list[int]:
        """Index of the phrase (text between delimiters) holding each query's
        highest token probability."""
        torch = self._torch
        ids = input_ids[: min(len(input_ids), query_probs.shape[-1])]
        is_delimiter = torch.tensor(
            [int(t) in self._delimiter_ids for t in ids.tolist()], dtype=torch.bool
        )
        # Phrase k is the tokens after the k-th delimiter ([CLS] is delimiter 0).
        group = torch.cumsum(is_delimiter.int(), 0) - 1
        group[is_delimiter] = -1
        num_phrases = int(group.max()) + 1 if len(group) else 0
        if num_phrases <= 0:
            return [0] * len(query_probs)
        per_phrase = torch.full((len(query_probs), num_phrases), -1.0)
        for k in range(num_phrases):
            members = group == k
            if members.any():
                per_phrase[:, k] = query_probs[:, : len(ids)][:, members].max(-1).values
        return per_phrase.argmax(-1).tolist()


SEGMENTERS.register("grounded-sam")(GroundedSamSegmenter)
