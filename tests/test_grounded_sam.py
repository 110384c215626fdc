"""The `grounded-sam` segmenter, end to end on tiny random-weight models.

The real checkpoints cannot be downloaded here, so a tiny GroundingDINO (Swin +
BERT) and a tiny SAM are built from configs, saved with `save_pretrained`, and
loaded back by path exactly as the real ones would be. Random weights give
arbitrary boxes and masks: the tests check shapes, types, thresholds, the
selection and refinement rules, not detection quality.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
cv2 = pytest.importorskip("cv2")

from recombinet_builder.backends import SEGMENTERS, Candidate, Segmenter  # noqa: E402
from recombinet_builder.segment_grounded_sam import (  # noqa: E402
    DEFAULT_DETECTOR,
    DEFAULT_SAM,
    GroundedSamSegmenter,
    join_prompts,
    largest_contour_mask,
    select_best_masks,
)

PROMPT_WORDS = ["a", "goldfish", "cyprinid", "tench", "dog"]
# (width, height) of the two test images: different sizes and aspect ratios.
SIZES = [(120, 90), (80, 100)]


def _write_vocab(path) -> None:
    """A tiny BERT vocab whose special ids match bert-base-uncased.

    GroundingDINO splits its text into phrases at hard-coded BERT ids
    ([CLS]=101, [SEP]=102, "."=1012, "?"=1029), so they are kept in place and
    the gaps filled with unused tokens; the prompt words come after.
    """
    vocab = [f"[unused{i}]" for i in range(1030)]
    specials = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}
    for index, token in specials.items():
        vocab[index] = token
    path.write_text("\n".join(vocab + PROMPT_WORDS) + "\n")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Directories holding a tiny GroundingDINO and a tiny SAM (model + processor)."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SamConfig,
        SamImageProcessorPil,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
        SwinConfig,
    )

    root = tmp_path_factory.mktemp("grounded_sam")
    vocab_file = root / "vocab.txt"
    _write_vocab(vocab_file)
    tokenizer = BertTokenizer(str(vocab_file))

    torch.manual_seed(0)
    detector_dir = root / "grounding-dino-tiny"
    detector_config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            image_size=64,
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=4,
            out_features=["stage2", "stage3", "stage4"],
        ),
        text_config=BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
        ),
        d_model=32,
        num_queries=20,
        encoder_layers=1,
        decoder_layers=2,  # 1 is not supported
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=2,
        decoder_n_points=2,
        num_feature_levels=3,  # = number of backbone out_features
        max_text_len=32,
    )
    GroundingDinoForObjectDetection(detector_config).save_pretrained(detector_dir)
    GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}),
        tokenizer=tokenizer,
    ).save_pretrained(detector_dir)

    sam_dir = root / "sam-tiny"
    sam_config = SamConfig(
        vision_config=SamVisionConfig(
            hidden_size=32,
            output_channels=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=64,
            patch_size=8,
            window_size=4,
            global_attn_indexes=[1],
            num_pos_feats=8,  # = prompt encoder hidden_size / 2
            mlp_dim=32,
        ),
        prompt_encoder_config=SamPromptEncoderConfig(
            hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4
        ),
        mask_decoder_config=SamMaskDecoderConfig(
            hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=16
        ),
    )
    SamModel(sam_config).save_pretrained(sam_dir)
    SamProcessor(
        SamImageProcessorPil(
            size={"longest_edge": 64},
            pad_size={"height": 64, "width": 64},
            mask_size={"longest_edge": 16},
            mask_pad_size={"height": 16, "width": 16},
        )
    ).save_pretrained(sam_dir)
    return {"detector": str(detector_dir), "sam": str(sam_dir)}


@pytest.fixture(scope="session")
def segmenter(tiny_models):
    """Every box passes (threshold 0), so there is always something to segment."""
    return GroundedSamSegmenter(**tiny_models, box_threshold=0.0, device="cpu")


@pytest.fixture(scope="session")
def images():
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for width, height in SIZES
    ]


PROMPTS = [["A Goldfish", "cyprinid."], ["tench"]]


@pytest.fixture(scope="session")
def results(segmenter, images):
    return segmenter.segment(images, PROMPTS)


def _external_contours(mask: np.ndarray):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return contours


# ---------------------------------------------------------------- end to end


def test_one_list_per_image_with_source_size_bool_masks(results, images):
    assert len(results) == len(images)
    for candidates, image, prompts in zip(results, images, PROMPTS):
        assert 0 < len(candidates) <= 3  # max_boxes default
        for candidate in candidates:
            assert isinstance(candidate, Candidate)
            assert candidate.mask.dtype == np.bool_
            assert candidate.mask.shape == (image.height, image.width)
            assert 0.0 <= candidate.score <= 1.0
            assert candidate.prompt in prompts  # the caller's prompt, unnormalised


def test_each_mask_is_one_filled_region(results):
    for candidates in results:
        for candidate in candidates:
            mask = candidate.mask
            assert mask.any()
            assert len(_external_contours(mask)) == 1
            # largest external contour, filled: refining again changes nothing (no holes)
            np.testing.assert_array_equal(largest_contour_mask(mask), mask)


def test_max_boxes_caps_candidates(tiny_models, images):
    one = GroundedSamSegmenter(**tiny_models, box_threshold=0.0, max_boxes=1, batch_size=1, device="cpu")
    results = one.segment(images, PROMPTS)
    assert [len(c) <= 1 for c in results] == [True, True]
    assert sum(len(c) for c in results) >= 1


def test_nothing_passes_threshold_gives_empty_lists(tiny_models, images):
    strict = GroundedSamSegmenter(**tiny_models, box_threshold=1.01, device="cpu")
    assert strict.segment(images, PROMPTS) == [[], []]


def test_image_without_prompts_gets_no_candidates(segmenter, images):
    results = segmenter.segment(images, [[], ["dog"]])
    assert results[0] == []
    assert len(results[1]) >= 1
    assert {c.prompt for c in results[1]} == {"dog"}
    assert segmenter.segment([], []) == []


def test_mismatched_prompts_rejected(segmenter, images):
    with pytest.raises(ValueError):
        segmenter.segment(images, [["dog"]])
    with pytest.raises(TypeError):
        segmenter.segment(images[:1], ["dog"])


# ------------------------------------------------------------- pure helpers


def test_select_best_masks_takes_argmax_not_union():
    masks = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    masks[0, 0, 0, :] = True
    masks[0, 1, 1, :] = True  # best for box 0
    masks[0, 2, 2, :] = True
    masks[1, 0, :, 0] = True
    masks[1, 1, :, 1] = True
    masks[1, 2, :, 2] = True  # best for box 1
    iou = torch.tensor([[0.2, 0.9, 0.5], [0.1, 0.3, 0.8]])

    best, best_iou = select_best_masks(masks, iou)

    assert best.shape == (2, 4, 4)
    assert torch.equal(best[0], masks[0, 1])
    assert torch.equal(best[1], masks[1, 2])
    assert not torch.equal(best[0], masks[0].any(0))  # not the OR of the candidates
    assert torch.allclose(best_iou, torch.tensor([0.9, 0.8]))

    best_np, iou_np = select_best_masks(masks.numpy(), iou.numpy())
    np.testing.assert_array_equal(best_np, best.numpy())
    np.testing.assert_allclose(iou_np, [0.9, 0.8])

    with pytest.raises(ValueError):
        select_best_masks(masks, iou[:, :2])


def test_largest_contour_mask_keeps_largest_region_filled():
    mask = np.zeros((30, 30), dtype=bool)
    mask[2:20, 2:20] = True
    mask[8:12, 8:12] = False  # a hole
    mask[25:28, 25:28] = True  # a smaller region
    refined = largest_contour_mask(mask)
    assert refined.dtype == np.bool_
    expected = np.zeros_like(mask)
    expected[2:20, 2:20] = True
    np.testing.assert_array_equal(refined, expected)
    assert not largest_contour_mask(np.zeros((5, 5), dtype=bool)).any()


def test_join_prompts_normalises_and_maps_back():
    text, origin = join_prompts(["A Goldfish", "", "cyprinid.", "a goldfish", "what? fish"])
    assert text == "a goldfish. cyprinid. what fish."
    assert origin == [0, 2, 4]
    assert join_prompts([]) == ("", [])


def test_phrases_map_to_their_prompt(segmenter):
    tokenizer = segmenter.detector_processor.tokenizer
    ids = tokenizer(["a goldfish. cyprinid. tench."], return_tensors="pt")["input_ids"][0]
    # [CLS] a goldfish . cyprinid . tench . [SEP]
    probs = torch.zeros(3, 32)
    probs[0, 2] = 0.9  # "goldfish" -> phrase 0
    probs[1, 4] = 0.7  # "cyprinid" -> phrase 1
    probs[2, 1] = 0.4  # "a" (phrase 0) loses to
    probs[2, 6] = 0.6  # "tench" -> phrase 2
    assert segmenter._match_phrases(probs, ids) == [0, 1, 2]


# ------------------------------------------------------- metadata, registry


def test_version(segmenter, tiny_models):
    version = segmenter.version
    assert version["backend"] == "grounded-sam"
    assert version["detector"] == tiny_models["detector"]
    assert version["sam"] == tiny_models["sam"]
    assert version["revision"] is None
    assert version["box_threshold"] == 0.0
    assert version["text_threshold"] == 0.25
    assert version["max_boxes"] == 3


def test_defaults_are_the_published_models():
    import inspect

    parameters = inspect.signature(GroundedSamSegmenter).parameters
    assert parameters["detector"].default == DEFAULT_DETECTOR == "IDEA-Research/grounding-dino-base"
    assert parameters["sam"].default == DEFAULT_SAM == "facebook/sam-vit-huge"
    assert parameters["box_threshold"].default == 0.3
    assert parameters["text_threshold"].default == 0.25


def test_registry_creates_it_by_name(tiny_models):
    assert "grounded-sam" in SEGMENTERS.factories
    created = SEGMENTERS.create("grounded-sam", **tiny_models, revision=None, device="cpu")
    assert isinstance(created, GroundedSamSegmenter)
    assert isinstance(created, Segmenter)
    assert created.name == "grounded-sam"
    assert created.device.type == "cpu"


def test_module_import_is_light():
    code = (
        "import sys, recombinet_builder.segment_grounded_sam; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
