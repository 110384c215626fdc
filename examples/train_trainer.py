"""Fine-tune an image classifier with `transformers.Trainer` on a recombination config, and
evaluate it on the original (not recombined) images.

    # offline, on the built sample release (20 ImageNet photos; only a `train` split)
    python examples/train_trainer.py --release out/sample --config same-range-pt0.8 \\
        --model vit-tiny --epochs 3 --source sample
    # a pretrained model from the Hub, MixUp/CutMix, 2 persistent workers
    python examples/train_trainer.py --release org/recombinet-in1k --config same-range-pt0.8 \\
        --model google/vit-base-patch16-224 --epochs 30 --mix both --num-workers 2

`--model` is a Hub id/path (any `AutoModelForImageClassification`; its PIL image processor
gives size and normalisation), or `vit-tiny` / `convnext-tiny`: tiny randomly initialised models
built from `ViTConfig` / `ConvNextConfig` at `--image-size` (default 32) for offline runs.

Labels: `--labels compact` (default) trains one output per class present in the training
split (the sample has the 1000 ImageNet names but 20 classes: 20 outputs, `id2label` holds
their ImageNet names); `--labels full` keeps every class of the release's label space (1000
outputs for ImageNet releases: pretrained ImageNet heads line up).

Evaluation uses the originals: config `--config` with `orig_img_prob=1`, images from
`--source` (a folder of the source images matched by file stem; `sample` = the sample photos
from the pinned foolbox wheel) or, without it, reconstructed from foreground + own background.
The split is `validation` when the release has one, else `train` (the sample has no
validation split, so its accuracy measures fitting, not generalisation).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch
from datasets import get_dataset_split_names
from transformers import TrainingArguments

from recombinet_hf import get_recombiner, load_dataset
from recombinet_hf.mixing import MIX_MODES, MixCollator, batch_mixing, soft_cross_entropy
from recombinet_hf.training import (
    TINY_MODELS,
    EpochCallback,
    ImageClassificationCollator,
    LabelSpace,
    RecombineTrainer,
    build_model,
    compute_accuracy,
    image_processor_for,
    load_original_images,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", required=True, help="release folder or Hub dataset id")
    parser.add_argument("--config", default="same-range-pt0.8", help="recombination config name")
    parser.add_argument("--model", default="vit-tiny", help=f"Hub id/path or one of {list(TINY_MODELS)}")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-3 for tiny models, 5e-5 otherwise")
    parser.add_argument("--image-size", type=int, default=32, help="input size of the tiny models")
    parser.add_argument("--labels", choices=["compact", "full"], default="compact")
    parser.add_argument("--mix", choices=MIX_MODES, default="none")
    parser.add_argument("--source", default=None, help="folder of the original images, or `sample`")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--persistent-workers", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--revision", default=None)
    parser.add_argument("--output-dir", default=None, help="checkpoints and metrics.json (default: a temp folder)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    hub = {"revision": args.revision} if args.revision else {}
    probe = load_dataset(args.release, args.config, split="train", **hub)
    label_space = LabelSpace.from_dataset(probe, compact=args.labels == "compact")
    model = build_model(args.model, label_space, image_size=args.image_size, seed=args.seed)
    processor = image_processor_for(args.model if args.model not in TINY_MODELS else model)

    train = load_dataset(args.release, args.config, split="train", seed=args.seed, num_epochs=args.epochs,
                         image_transform=processor, **hub)
    splits = get_dataset_split_names(args.release, "foregrounds", **hub)
    eval_split = "validation" if "validation" in splits else "train"
    evaluation = load_original_images(args.release, args.config, eval_split, source=args.source,
                                      image_transform=processor, **hub)

    collator = ImageClassificationCollator(label_space)
    mixing = batch_mixing(args.mix, label_space.num_labels)
    train_collator = MixCollator(mixing, collator=collator, seed=args.seed) if mixing is not None else collator

    output_dir = args.output_dir or tempfile.mkdtemp(prefix="recombinet-train-")
    training_args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.lr if args.lr is not None else (1e-3 if args.model in TINY_MODELS else 5e-5),
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        remove_unused_columns=False,  # the recombination needs the foreground columns
        dataloader_num_workers=args.num_workers,
        dataloader_persistent_workers=args.persistent_workers and args.num_workers > 0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        seed=args.seed,
    )
    trainer = RecombineTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=train_collator,
        eval_data_collator=collator,
        compute_metrics=compute_accuracy,
        compute_loss_func=soft_cross_entropy,
        callbacks=[EpochCallback(train, train_collator if mixing is not None else None)],
    )
    trainer.train()
    metrics = trainer.evaluate()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    result = {
        "config": get_recombiner(train).config.name,
        "model": args.model,
        "num_labels": label_space.num_labels,
        "train_samples": len(train),
        "eval_split": eval_split,
        "eval_samples": len(evaluation),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        **metrics,
    }
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
