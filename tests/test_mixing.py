import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recombinet_hf import load_dataset
from recombinet_hf.mixing import (
    CutMix,
    MixCollator,
    MixUp,
    RandomChoice,
    cutmix_bbox_and_lam,
    mixup_target,
    rand_bbox,
    soft_cross_entropy,
)
from recombinet_hf.training import ImageClassificationCollator


def batch(size=6, num_classes=5, height=20, width=16):
    """Image i is constant i (so the origin of every pixel is known); labels cycle."""
    images = torch.arange(size, dtype=torch.float32).view(size, 1, 1, 1).expand(size, 3, height, width).clone()
    labels = torch.arange(size) % num_classes
    return images, labels


def test_mixup_targets_and_images():
    images, labels = batch()
    mixed, targets = MixUp(alpha=0.4, num_classes=5)(images, labels, generator=np.random.default_rng(1))
    assert targets.shape == (6, 5) and targets.dtype == torch.float32
    assert torch.allclose(targets.sum(1), torch.ones(6))
    lam = float(targets[1, 1])  # sample 1 (class 1) mixed with sample 0 (class 0)
    assert torch.allclose(mixed[1], lam * images[1] + (1 - lam) * images[0])
    assert torch.allclose(targets[1], torch.tensor([1 - lam, lam, 0, 0, 0]))


def test_cutmix_lam_matches_the_clipped_box():
    images, labels = batch(height=20, width=16)
    transform = CutMix(alpha=1.0, num_classes=5)
    for seed in range(40):
        mixed, targets = transform(images, labels, generator=np.random.default_rng(seed))
        assert torch.allclose(targets.sum(1), torch.ones(6))
        own = float((mixed[2] == images[2]).float().mean())  # fraction of sample 2 that is its own
        lam = float(targets[2, 2])
        assert own == pytest.approx(lam, abs=1e-6)
        assert float(targets[2, 1]) == pytest.approx(1 - lam, abs=1e-6)


def test_box_maths():
    rng = np.random.default_rng(0)
    for lam in (0.0, 0.3, 0.9, 1.0):
        y0, y1, x0, x1 = rand_bbox((3, 30, 40), lam, rng)
        assert 0 <= y0 <= y1 <= 30 and 0 <= x0 <= x1 <= 40
    box, lam = cutmix_bbox_and_lam((30, 40), 1.0, rng)
    assert lam == 1.0 and (box[1] - box[0]) * (box[3] - box[2]) == 0
    # a box centred on a corner is clipped: the corrected lam counts only what is inside
    corner = np.random.default_rng(3)
    for _ in range(20):
        (y0, y1, x0, x1), corrected = cutmix_bbox_and_lam((30, 40), 0.5, corner)
        assert corrected == pytest.approx(1 - (y1 - y0) * (x1 - x0) / 1200)
        assert corrected >= 0.5 - 1e-9
    with pytest.raises(ValueError, match=r"`lam` out of bounds"):
        rand_bbox((30, 40), 1.5, rng)


def test_mixup_target_smoothing_sums_to_one():
    targets = mixup_target(torch.tensor([0, 2, 1]), 4, lam=0.7, smoothing=0.1)
    assert torch.allclose(targets.sum(1), torch.ones(3))
    assert float(targets[0, 0]) == pytest.approx(0.7 * (0.9 + 0.025) + 0.3 * 0.025)


def test_explicit_generators_and_no_global_state():
    images, labels = batch()
    transform = RandomChoice([MixUp(alpha=1.0, num_classes=5), CutMix(alpha=1.0, num_classes=5)])
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    before = (torch.rand(1), np.random.random(), random.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    first = transform(images, labels, generator=np.random.default_rng(7))
    second = transform(images, labels, generator=np.random.default_rng(7))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert (torch.rand(1), np.random.random(), random.random()) == before
    kinds = set()
    for seed in range(20):
        mixed, _ = transform(images, labels, generator=np.random.default_rng(seed))
        kinds.add("cut" if bool((mixed[1] == images[1]).any()) else "mix")
    assert kinds == {"cut", "mix"}


def test_probability_and_bad_inputs():
    images, labels = batch()
    never = MixUp(alpha=1.0, num_classes=5, p=0.0)
    mixed, targets = never(images, labels, generator=np.random.default_rng(0))
    assert torch.equal(mixed, images) and torch.equal(targets, F.one_hot(labels, 5).float())
    with pytest.raises(TypeError, match=r"float `images`"):
        MixUp(num_classes=5)(images.to(torch.uint8), labels)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        CutMix(num_classes=3)(images, labels)
    with pytest.raises(ValueError, match=r"`num_classes` must be a positive integer"):
        MixUp(alpha=1.0)
    with pytest.raises(ValueError, match=r"`p` must hold 2 non-negative weights"):
        RandomChoice([MixUp(num_classes=2), CutMix(num_classes=2)], p=[1.0])


def hand_soft_ce(logits, targets):
    total = 0.0
    for row, target in zip(logits.tolist(), targets.tolist()):
        norm = math.log(sum(math.exp(v) for v in row))
        total += -sum(t * (v - norm) for t, v in zip(target, row))
    return total / len(targets)


def test_soft_cross_entropy_matches_hand_computation():
    images, labels = batch()
    _, targets = MixUp(alpha=1.0, num_classes=5)(images, labels, generator=np.random.default_rng(2))
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    loss = soft_cross_entropy({"logits": logits}, targets)
    assert float(loss) == pytest.approx(hand_soft_ce(logits, targets), rel=1e-5)
    # Trainer's num_items_in_batch counts label elements (B x C) over accumulated batches
    assert float(soft_cross_entropy(logits, targets, num_items_in_batch=torch.tensor(60))) == pytest.approx(
        hand_soft_ce(logits, targets) / 2, rel=1e-5
    )
    hard = soft_cross_entropy(logits, labels)
    assert float(hard) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)
    assert float(hard) == pytest.approx(hand_soft_ce(logits, F.one_hot(labels, 5).float()), rel=1e-5)
    with pytest.raises(ValueError, match=r"logits' shape"):
        soft_cross_entropy(logits, targets[:, :3])


def rows(count=8, num_classes=5):
    return [
        {"pixel_values": torch.full((3, 8, 8), float(i)), "label": i % num_classes, "fg_key": f"k{i}", "bg_key": "b",
         "bg_label": 0}
        for i in range(count)
    ]


def test_mix_collator_seeds_per_batch_and_epoch():
    collator = MixCollator(MixUp(alpha=1.0, num_classes=5), seed=3)
    first = [collator(rows())["labels"] for _ in range(3)]
    assert not torch.equal(first[0], first[1])
    again = MixCollator(MixUp(alpha=1.0, num_classes=5), seed=3)
    assert all(torch.equal(a, again(rows())["labels"]) for a in first)
    collator.set_epoch(1)
    assert not torch.equal(collator(rows())["labels"], first[0])
    batch_ = collator(rows())
    assert set(batch_) == {"pixel_values", "labels"} and batch_["labels"].shape == (8, 5)
    collator.enabled = False
    assert collator(rows())["labels"].dtype == torch.long


def test_mix_collator_takes_torchvision_style_transforms():
    def tv_style(images, labels):  # no `generator`: torchvision's v2.MixUp/CutMix convention
        return images.flip(0), F.one_hot(labels, 5).float()

    out = MixCollator(tv_style)(rows())
    assert out["labels"].shape == (8, 5) and float(out["pixel_values"][0, 0, 0, 0]) == 7.0
    with pytest.raises(ValueError, match=r"soft labels of shape \[B, num_classes\]"):
        MixCollator(lambda images, labels: (images, labels))(rows())


def test_mix_collator_is_the_same_with_dataloader_workers(release):
    from transformers import ViTImageProcessorPil

    dataset = load_dataset(release, "same-range-pt1.0", split="train",
                           image_transform=ViTImageProcessorPil(size={"height": 16, "width": 16}))

    def run(**kwargs):
        collator = MixCollator(CutMix(alpha=1.0, num_classes=3), collator=ImageClassificationCollator(), seed=1)
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collator, **kwargs)
        return [(b["pixel_values"], b["labels"]) for b in loader]

    reference = run(num_workers=0)
    parallel = run(num_workers=2)
    assert len(reference) == len(parallel) == 4
    for (x, y), (u, v) in zip(reference, parallel):
        assert torch.equal(x, u) and torch.equal(y, v)


def test_batch_mixing_by_name():
    from recombinet_hf.mixing import CutMix, MixUp, RandomChoice, batch_mixing

    assert batch_mixing("none", 3) is None
    assert isinstance(batch_mixing("mixup", 3), MixUp) and isinstance(batch_mixing("cutmix", 3), CutMix)
    assert isinstance(batch_mixing("both", 3), RandomChoice)
    with pytest.raises(ValueError, match=r"`mode` must be one of \['none', 'mixup', 'cutmix', 'both'\], got 'mix'"):
        batch_mixing("mix", 3)
