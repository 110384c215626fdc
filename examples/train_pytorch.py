"""Fine-tune an image classifier on a recombination config with a plain PyTorch loop: DataLoader
workers, `DistributedSampler` + `set_epoch` under torchrun (gloo on CPU, nccl on GPUs), optional
MixUp/CutMix and streaming; evaluation on the original images.

    # one process, evaluated on the sample photos
    python examples/train_pytorch.py --release out/sample --config same-range-pt0.8 --model vit-tiny \
        --epochs 3 --source sample
    # two processes on CPU (gloo), 2 DataLoader workers each, persistent
    torchrun --nproc_per_node 2 examples/train_pytorch.py --release out/sample --config same-range-pt0.8 \\
        --model convnext-tiny --epochs 3 --num-workers 2 --persistent-workers
    # streaming: each rank reads its share of the foreground row groups
    torchrun --nproc_per_node 2 examples/train_pytorch.py --release out/sample --streaming ...

Each epoch: `set_epoch(train, epoch)` (new recombinations, also in persistent workers),
`sampler.set_epoch(epoch)` (new shuffle, the same on every rank) and `collator.set_epoch(epoch)`
(new MixUp/CutMix draws). With `--streaming`, `split_dataset_by_node` gives each rank its rows;
ranks may hold a few rows more or less (and DataLoader workers end with partial batches), so
the loop runs inside DDP's `join()`, which handles uneven inputs. Labels and models as in
`train_trainer.py` (`--labels compact|full`, `vit-tiny`/`convnext-tiny` or a Hub id).
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from datasets import get_dataset_split_names
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

from recombinet_hf import load_dataset, set_epoch, split_dataset_by_node
from recombinet_hf.mixing import MIX_MODES, MixCollator, batch_mixing, soft_cross_entropy
from recombinet_hf.training import (
    TINY_MODELS,
    ImageClassificationCollator,
    LabelSpace,
    build_model,
    image_processor_for,
    load_original_images,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", required=True, help="release folder or Hub dataset id")
    parser.add_argument("--config", default="same-range-pt0.8")
    parser.add_argument("--model", default="vit-tiny", help=f"Hub id/path or one of {list(TINY_MODELS)}")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-3 for tiny models, 5e-5 otherwise")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--labels", choices=["compact", "full"], default="compact")
    parser.add_argument("--mix", choices=MIX_MODES, default="none")
    parser.add_argument("--source", default=None, help="folder of the original images (for evaluation), or `sample`")
    parser.add_argument("--streaming", action="store_true")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--persistent-workers", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metrics", default=None, help="write the final metrics (rank 0) to this JSON file")
    return parser.parse_args(argv)


def setup() -> tuple[int, int]:
    """(rank, world_size); joins the process group under torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), world_size
    return 0, 1


def all_reduce(value: float, op=None) -> float:
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM)
    return float(tensor.item())


def make_train_loader(args, processor, collate, rank: int, world_size: int):
    """(dataset, sampler or None, loader) for the training split."""
    common = dict(split="train", seed=args.seed, num_epochs=args.epochs, image_transform=processor)
    workers = dict(num_workers=args.num_workers, persistent_workers=args.persistent_workers and args.num_workers > 0)
    if args.streaming:
        stream = load_dataset(args.release, args.config, streaming=True, **common)
        train = split_dataset_by_node(stream, rank, world_size)
        return train, None, DataLoader(train, batch_size=args.batch_size, collate_fn=collate, **workers)
    train = load_dataset(args.release, args.config, **common)
    if world_size > 1:
        sampler = DistributedSampler(train, num_replicas=world_size, rank=rank, shuffle=True, seed=args.seed)
    else:
        sampler = RandomSampler(train, generator=torch.Generator().manual_seed(args.seed))
    return train, sampler, DataLoader(train, batch_size=args.batch_size, sampler=sampler, collate_fn=collate, **workers)


@torch.no_grad()
def evaluate(model, evaluation, collate, batch_size: int, rank: int, world_size: int) -> float:
    """Accuracy on the originals; each rank takes every world_size-th image (no padding)."""
    model.eval()
    part = Subset(evaluation, range(rank, len(evaluation), world_size))
    correct = total = 0
    for batch in DataLoader(part, batch_size=batch_size, collate_fn=collate):
        logits = model(pixel_values=batch["pixel_values"]).logits
        correct += int((logits.argmax(-1) == batch["labels"]).sum())
        total += len(batch["labels"])
    model.train()
    return all_reduce(correct) / max(all_reduce(total), 1)


def main(argv=None) -> dict:
    args = parse_args(argv)
    rank, world_size = setup()
    probe = load_dataset(args.release, args.config, split="train")
    label_space = LabelSpace.from_dataset(probe, compact=args.labels == "compact")
    # seeded: the same initial weights on every rank
    model = build_model(args.model, label_space, image_size=args.image_size, seed=args.seed)
    processor = image_processor_for(args.model if args.model not in TINY_MODELS else model)

    collator = ImageClassificationCollator(label_space)
    mixing = batch_mixing(args.mix, label_space.num_labels)
    train_collate = collator if mixing is None else MixCollator(mixing, collator=collator, seed=args.seed)
    train, sampler, loader = make_train_loader(args, processor, train_collate, rank, world_size)
    eval_split = "validation" if "validation" in get_dataset_split_names(args.release, "foregrounds") else "train"
    evaluation = load_original_images(args.release, args.config, eval_split, source=args.source,
                                      image_transform=processor)

    ddp = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    lr = args.lr if args.lr is not None else (1e-3 if args.model in TINY_MODELS else 5e-5)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=lr)
    history = []
    for epoch in range(args.epochs):
        set_epoch(train, epoch)  # recombination (reaches persistent workers)
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)  # shuffle
        if hasattr(train_collate, "set_epoch"):
            train_collate.set_epoch(epoch)  # MixUp/CutMix
        total_loss, seen, steps = 0.0, 0, 0
        # Streaming ranks may hold a few rows more or less: `join` lets DDP finish uneven inputs.
        with ddp.join() if world_size > 1 else nullcontext():
            for batch in loader:
                loss = soft_cross_entropy(ddp(pixel_values=batch["pixel_values"]), batch["labels"])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total_loss += float(loss.detach()) * len(batch["pixel_values"])
                seen += len(batch["pixel_values"])
                steps += 1
        samples = all_reduce(seen)
        mean_loss = all_reduce(total_loss) / max(samples, 1)
        accuracy = evaluate(model, evaluation, collator, args.batch_size, rank, world_size)
        history.append(
            {"epoch": epoch, "loss": mean_loss, "accuracy": accuracy, "steps": steps, "samples": int(samples)}
        )
        if rank == 0:
            print(json.dumps(history[-1]), flush=True)
    result = {
        "world_size": world_size, "eval_split": eval_split, "num_labels": label_space.num_labels, "history": history,
    }
    if rank == 0 and args.metrics:
        Path(args.metrics).write_text(json.dumps(result, indent=2) + "\n")
    if dist.is_initialized():
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
