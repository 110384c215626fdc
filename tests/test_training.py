import numpy as np
import pytest
import torch
from PIL import Image
from transformers import TrainingArguments

from recombinet_hf import load_dataset, set_epoch
from recombinet_hf.mixing import CutMix, MixCollator, soft_cross_entropy
from recombinet_hf.parquet_writer import shard_path, write_shard
from recombinet_hf.release import write_minimal_card, write_release_info
from recombinet_hf.training import (
    EpochCallback,
    ImageClassificationCollator,
    LabelSpace,
    RecombineTrainer,
    build_model,
    compute_accuracy,
    image_processor_for,
    load_original_images,
    original_config_name,
)
from synthetic import CLASS_NAMES, make_photo, rows_for

IMAGENET_LIKE = [f"class {i}" for i in range(1000)]
PRESENT = (1, 243, 559, 998)


def make_sample_like_release(folder, present=PRESENT, per_class=2):
    """Like the built sample: the 1000-name ImageNet label space, only a few classes present, train only."""
    entries = sorted((f"imagenet_{n:02d}_{label}", label) for label in present for n in range(per_class))
    tables = {"foregrounds": [], "backgrounds": [], "masks": []}
    for idx, (key, label) in enumerate(entries):
        image, mask = make_photo(96, 72, label, 0.2, seed=idx)
        for config, row in rows_for(key, idx, label, image, mask).items():
            tables[config].append(row)
    for config, rows in tables.items():
        write_shard(shard_path(folder, config, "train", 0, 1), config, rows, IMAGENET_LIKE)
    write_release_info(folder, {"release_version": "0.0.1"})
    write_minimal_card(folder, IMAGENET_LIKE, ["same-range-pt0.8"])
    return folder


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def training_args(tmp_path, **overrides):
    defaults = dict(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=6, per_device_eval_batch_size=12,
        learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, save_strategy="no",
        report_to="none", remove_unused_columns=False, use_cpu=True, disable_tqdm=True, seed=0,
    )
    return TrainingArguments(**{**defaults, **overrides})


def test_label_space_and_collator():
    space = LabelSpace(("cat", "dog"), (243, 559))
    assert space.id2label == {0: "cat", 1: "dog"} and space.label2id == {"cat": 0, "dog": 1} and not space.is_identity
    rows = [
        {"pixel_values": torch.ones(3, 4, 4), "label": 559, "fg_key": "a", "bg_key": "b", "bg_label": 243,
         "params": {"idx": 0}, "mask": torch.zeros(4, 4)},
        {"pixel_values": np.zeros((3, 4, 4), dtype=np.float32), "label": 243, "fg_key": "c", "bg_key": "d",
         "bg_label": 559, "params": {"idx": 1}, "mask": torch.ones(4, 4)},
    ]
    rows[1]["pixel_values"] = torch.from_numpy(rows[1]["pixel_values"])
    batch = ImageClassificationCollator(space)(rows)
    assert set(batch) == {"pixel_values", "labels"}
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long
    assert batch["pixel_values"].shape == (2, 3, 4, 4) and batch["pixel_values"].dtype == torch.float32
    assert ImageClassificationCollator(keep=("mask",))(rows)["mask"].shape == (2, 4, 4)
    with pytest.raises(ValueError, match="Dataset label 7 is not in this label space"):
        ImageClassificationCollator(space)([{**rows[0], "label": 7}])
    with pytest.raises(TypeError, match="load the dataset with `image_transform=`"):
        ImageClassificationCollator()([{"image": Image.new("RGB", (4, 4)), "label": 0}])


def test_compute_accuracy():
    logits = np.array([[2.0, 0.1], [0.0, 1.0], [3.0, 0.0]])
    assert compute_accuracy((logits, np.array([0, 1, 1])))["accuracy"] == pytest.approx(2 / 3)
    assert compute_accuracy((logits, np.array([[1.0, 0.0], [0.3, 0.7], [0.9, 0.1]])))["accuracy"] == 1.0


@pytest.mark.parametrize(
    "kind, processor", [("vit-tiny", "ViTImageProcessorPil"), ("convnext-tiny", "ConvNextImageProcessorPil")]
)
def test_tiny_models_and_their_processors(kind, processor):
    space = LabelSpace(tuple(CLASS_NAMES), (0, 1, 2))
    model = build_model(kind, space, image_size=32)
    assert model.config.id2label == {0: "red disc", 1: "green box", 2: "blue bar"}
    image_processor = image_processor_for(model)
    assert type(image_processor).__name__ == processor
    values = image_processor(images=Image.new("RGB", (96, 72), (255, 0, 0)), return_tensors="pt")["pixel_values"]
    assert values.shape == (1, 3, 32, 32) and model(pixel_values=values).logits.shape == (1, 3)
    again = build_model(kind, space, image_size=32)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))  # seeded, local RNG


def test_compact_labels_on_a_sample_like_release(tmp_path):
    folder = make_sample_like_release(tmp_path / "sample")
    dataset = load_dataset(folder, "same-range-pt0.8", split="train")
    full = LabelSpace.from_dataset(dataset)
    compact = LabelSpace.from_dataset(dataset, compact=True)
    assert full.num_labels == 1000 and full.is_identity
    assert compact.dataset_labels == PRESENT and compact.names == tuple(f"class {i}" for i in PRESENT)
    streamed = load_dataset(folder, "same-range-pt0.8", split="train", streaming=True)
    assert LabelSpace.from_dataset(streamed, compact=True) == compact


def test_original_images_for_evaluation(release):
    assert original_config_name("same-range-pt0.8-rot20-oiplin") == "same-range-pt0.8-rot20-oip1"
    originals = load_original_images(release, "all-range-pt1.0-rot30", "validation", return_params=True)
    raw = originals.with_format(None)
    for i in range(3):
        sample = originals[i]
        assert sample["params"]["use_original"] and sample["bg_key"] == sample["fg_key"]
        assert sample["image"].size == tuple(raw[i]["source_size"])


def test_trainer_overfits_a_tiny_set(release, tmp_path):
    """Tiny random ViT on 12 synthetic images: the loss halves within 50 steps; evaluation on
    the original images reports a locally computed accuracy."""
    probe = load_dataset(release, "same-range-pt1.0", split="train")
    space = LabelSpace.from_dataset(probe)
    model = build_model("vit-tiny", space, image_size=32)
    processor = image_processor_for(model)
    train = load_dataset(release, "same-range-pt1.0", split="train", image_transform=processor)
    evaluation = load_original_images(release, "same-range-pt1.0", "validation", image_transform=processor)
    collator = ImageClassificationCollator(space)
    trainer = RecombineTrainer(
        model=model, args=training_args(tmp_path, max_steps=50), train_dataset=train, eval_dataset=evaluation,
        data_collator=collator, compute_metrics=compute_accuracy, compute_loss_func=soft_cross_entropy,
        callbacks=[EpochCallback(train)],
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 50
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and np.isfinite(metrics["eval_loss"])


class RecordingTrainer(RecombineTrainer):
    """Trains in dataset order and records every batch it is given."""

    def _get_train_sampler(self, train_dataset=None):
        return torch.utils.data.SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    def compute_loss(self, model, inputs, *args, **kwargs):
        self.seen.append(inputs["pixel_values"].detach().clone())
        return super().compute_loss(model, inputs, *args, **kwargs)


@pytest.mark.parametrize("persistent", [False, True])
def test_epoch_callback_changes_images_in_workers(release, tmp_path, persistent):
    space = LabelSpace(tuple(CLASS_NAMES), (0, 1, 2))
    model = build_model("convnext-tiny", space, image_size=16)
    processor = image_processor_for(model)
    train = load_dataset(release, "all-range-pt1.0-rot20", split="train", image_transform=processor, seed=5)
    args = training_args(
        tmp_path, num_train_epochs=2, per_device_train_batch_size=4, learning_rate=0.0, logging_steps=100,
        dataloader_num_workers=2, dataloader_persistent_workers=persistent,
    )
    trainer = RecordingTrainer(
        model=model, args=args, train_dataset=train, data_collator=ImageClassificationCollator(space),
        compute_loss_func=soft_cross_entropy, callbacks=[EpochCallback(train)],
    )
    trainer.seen = []
    trainer.train()
    seen = torch.cat(trainer.seen)
    assert seen.shape[0] == 24
    expected = []
    for epoch in range(2):
        set_epoch(train, epoch)
        expected.append(torch.stack([train[i]["pixel_values"] for i in range(len(train))]))
    assert not torch.equal(expected[0], expected[1])
    assert torch.equal(seen[:12], expected[0]) and torch.equal(seen[12:], expected[1])


def test_mixing_only_in_training_batches(release, tmp_path):
    space = LabelSpace(tuple(CLASS_NAMES), (0, 1, 2))
    model = build_model("convnext-tiny", space, image_size=16)
    processor = image_processor_for(model)
    train = load_dataset(release, "same-range-pt1.0", split="train", image_transform=processor)
    evaluation = load_original_images(release, "same-range-pt1.0", "validation", image_transform=processor)
    collator = MixCollator(CutMix(alpha=1.0, num_classes=3), collator=ImageClassificationCollator(space))
    trainer = RecombineTrainer(
        model=model, args=training_args(tmp_path, max_steps=2), train_dataset=train, eval_dataset=evaluation,
        data_collator=collator, compute_metrics=compute_accuracy, compute_loss_func=soft_cross_entropy,
        callbacks=[EpochCallback(train, collator)],
    )
    assert trainer.eval_data_collator is collator.collator
    assert next(iter(trainer.get_train_dataloader()))["labels"].shape == (6, 3)
    assert next(iter(trainer.get_eval_dataloader()))["labels"].shape == (12,)
    trainer.train()
    assert "eval_accuracy" in trainer.evaluate()
    with pytest.raises(ValueError, match="pass `remove_unused_columns=False`"):
        RecombineTrainer(model=model, args=training_args(tmp_path, remove_unused_columns=True), train_dataset=train)
