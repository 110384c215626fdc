"""The `recombinet` command: `build`, `finalize`, plus the card commands of `recombinet_card`.

    recombinet build --source sample --out release/
    recombinet build --source /data/imagenet --out release/ --segment grounded-sam --inpaint lama
    torchrun --nproc_per_node=8 -m recombinet_builder.cli build --source ... --out ...
    recombinet finalize release/

A single-process build finalizes itself at the end; under torchrun/accelerate rank 0
finalizes after a gloo barrier; a Slurm array leaves it to a dependent `recombinet
finalize` job (see examples/). `--no-finalize` skips it.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import logging
import os
import sys
from typing import Optional, Sequence

from recombinet_hf.images import MAX_IMAGE_PIXELS

from .shards import DEFAULT_SHARD_SIZE, RankInfo, resolve_rank

__all__ = ["main", "build_parser", "parse_options"]

logger = logging.getLogger("recombinet_builder")

#: Same as recombinet_builder.finalize.CARD_MODES (kept here so `--help` imports nothing heavy).
CARD_MODES = ("full", "minimal", "none")
SEGMENTER_NAMES = ("salient", "grounded-sam")
INPAINTER_NAMES = ("telea", "lama")


def parse_options(pairs: Sequence[str], option: str) -> dict:
    """``["key=value", ...]`` -> dict; values are JSON when they parse (numbers, booleans,
    null, lists, objects), else strings."""
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"`{option}` takes KEY=VALUE; got {pair!r}.")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _add_build(subparsers) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build (this rank's part of) a release from a labelled image source",
        description="Segment, inpaint and write a RecombiNet release; resumable, shardable over ranks.",
    )
    source = parser.add_argument_group("source")
    source.add_argument("--source", required=True, help="`sample`, an ImageNet-style folder PATH, or `hf:ID_OR_PATH`")
    source.add_argument("--out", required=True, help="the release / build folder")
    source.add_argument("--splits", default=None, help="comma-separated release splits to build (train,validation); default: all the source has")
    source.add_argument("--limit", type=int, default=None, help="build only the first N images (key order) of each split")
    source.add_argument("--image-column", default=None, help="hf: the Image column (default: the only one)")
    source.add_argument("--label-column", default=None, help="hf: the ClassLabel column (default: the only one)")
    source.add_argument("--key-column", default=None, help="hf: a unique id column used as key (default: row number)")
    source.add_argument("--hf-config", default=None, help="hf: dataset config name")
    source.add_argument("--hf-revision", default=None, help="hf: dataset revision")
    source.add_argument("--val-labels", default=None, help="flat ImageNet val: LOC_val_solution.csv or ILSVRC2012_validation_ground_truth.txt")
    source.add_argument("--devkit-meta", default=None, help="flat ImageNet val with the ground-truth txt: the devkit's meta.mat")

    stages = parser.add_argument_group("stages")
    stages.add_argument("--segment", default="salient", help=f"segmenter backend ({', '.join(SEGMENTER_NAMES)}, or a plugin's)")
    stages.add_argument("--segment-option", action="append", default=[], metavar="KEY=VALUE", help="segmenter option (repeatable), e.g. box_threshold=0.3")
    stages.add_argument("--inpaint", default="telea", help=f"inpainter backend ({', '.join(INPAINTER_NAMES)}, or a plugin's)")
    stages.add_argument("--inpaint-option", action="append", default=[], metavar="KEY=VALUE", help="inpainter option (repeatable), e.g. model_path=big-lama.pt")
    stages.add_argument("--classifier", default="none", help="version scoring: none, hf:MODEL, or MODULE:FACTORY")
    stages.add_argument("--plugin", action="append", default=[], metavar="MODULE", help="import MODULE first (registers extra backends)")
    stages.add_argument("--dilation-radius", type=int, default=None, help="mask dilation before inpainting, px (default: 1.5%% of the diagonal, >= 3)")
    stages.add_argument("--iou-threshold", type=float, default=0.9, help="versions with a larger IoU are merged (default 0.9)")
    stages.add_argument("--max-versions", type=int, default=3, help="mask versions per image (default 3)")
    stages.add_argument("--max-pixels", type=int, default=MAX_IMAGE_PIXELS, help=f"images declaring more pixels end as too_large (default {MAX_IMAGE_PIXELS})")

    scale = parser.add_argument_group("scale")
    scale.add_argument("--batch-size", type=int, default=8, help="images per segmenter call; shards are whole batches (default 8)")
    scale.add_argument("--num-shards", type=int, default=None, help="shards per split (default: ceil(n / --shard-size))")
    scale.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help=f"images per shard when --num-shards is not given (default {DEFAULT_SHARD_SIZE})")
    scale.add_argument("--shard-index", "--rank", dest="shard_index", type=int, default=None, help="this process's rank (default: torchrun / Slurm array env, else 0)")
    scale.add_argument("--num-ranks", type=int, default=None, help="number of ranks (with --shard-index)")
    scale.add_argument("--num-workers", type=int, default=None, help="threads for decode/inpaint/encode (default: min(4, CPUs))")
    scale.add_argument("--barrier-timeout-hours", type=float, default=72.0, help="torchrun: how long ranks wait for each other before finalizing")
    scale.add_argument("--no-progress", action="store_true", help="no progress bar")

    release = parser.add_argument_group("release")
    release.add_argument("--release-version", default="1.0.0", help="release version (default 1.0.0)")
    release.add_argument("--recombination-config", action="append", default=[], metavar="NAME", help="extra recombination config listed in the card (repeatable)")
    release.add_argument("--no-finalize", action="store_true", help="do not finalize at the end")
    release.add_argument("--card", choices=CARD_MODES, default="full", help="README when finalizing: full card (default), minimal, or none")
    parser.set_defaults(handler=_run_build)


def _add_finalize(subparsers) -> None:
    parser = subparsers.add_parser(
        "finalize",
        help="merge outcomes, write recombinet.json and README.md (idempotent)",
        description="Finalize a build folder once all its shards are finished.",
    )
    parser.add_argument("folder", help="the build folder")
    parser.add_argument("--allow-partial", action="store_true", help="finalize even if shards are missing (they are dropped)")
    parser.add_argument("--release-version", default=None, help="override the release version given at build time")
    parser.add_argument("--recombination-config", action="append", default=[], metavar="NAME", help="extra recombination config (repeatable)")
    parser.add_argument("--card", choices=CARD_MODES, default="full", help="README: full card (default), minimal, or none")
    parser.set_defaults(handler=_run_finalize)


def build_parser() -> argparse.ArgumentParser:
    """The `recombinet` parser with every subcommand (card commands when installed)."""
    parser = argparse.ArgumentParser(prog="recombinet", description="Build, finalize and publish RecombiNet releases.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_build(subparsers)
    _add_finalize(subparsers)
    try:
        from recombinet_card.cli import add_subcommands
    except ImportError:
        add_subcommands = None
    if add_subcommands is not None:
        add_subcommands(subparsers)
    return parser


def _settings(args):
    from .manifest import BuildSettings

    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip()) if args.splits else None
    return BuildSettings(
        segment=args.segment,
        segment_options=parse_options(args.segment_option, "--segment-option"),
        inpaint=args.inpaint,
        inpaint_options=parse_options(args.inpaint_option, "--inpaint-option"),
        classifier=None if args.classifier in (None, "none") else args.classifier,
        batch_size=args.batch_size,
        num_shards=args.num_shards,
        shard_size=args.shard_size,
        dilation_radius=args.dilation_radius,
        iou_threshold=args.iou_threshold,
        max_versions=args.max_versions,
        max_pixels=args.max_pixels,
        limit=args.limit,
        splits=splits,
    )


def _init_distributed(rank: RankInfo, timeout_hours: float) -> bool:
    """Join the torchrun/accelerate process group (gloo, for barriers only); True if joined."""
    if rank.launcher != "torchrun" or "MASTER_ADDR" not in os.environ:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(
            backend="gloo", rank=rank.rank, world_size=rank.world_size, timeout=datetime.timedelta(hours=timeout_hours)
        )
    return True


def _run_build(args) -> int:
    from .finalize import finalize, recombination_configs
    from .pipeline import run_build
    from .sources import open_source

    for module in args.plugin:
        importlib.import_module(module)
    settings = _settings(args)
    recombination_configs(args.recombination_config)  # fail early on a bad name
    rank = resolve_rank(args.shard_index, args.num_ranks)
    distributed = _init_distributed(rank, args.barrier_timeout_hours)
    source = open_source(
        args.source,
        image_column=args.image_column,
        label_column=args.label_column,
        key_column=args.key_column,
        hf_config=args.hf_config,
        hf_revision=args.hf_revision,
        val_labels=args.val_labels,
        devkit_meta=args.devkit_meta,
    )
    num_workers = args.num_workers if args.num_workers is not None else min(4, os.cpu_count() or 1)
    report = run_build(
        source,
        settings,
        args.out,
        rank=rank,
        release_version=args.release_version,
        recombination_configs=args.recombination_config,
        num_workers=num_workers,
        progress=not args.no_progress,
    )
    logger.info(
        "rank %d/%d: built %d shard(s), skipped %d finished, %d images in %.1f s (%.2f img/s); outcomes %s",
        rank.rank, rank.world_size, len(report.shards_built), report.shards_skipped, report.images,
        report.elapsed_s, report.images_per_s, report.counts or "-",
    )
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        try:
            if rank.rank == 0 and not args.no_finalize:
                _log_finalized(finalize(args.out, card=args.card))
        finally:
            dist.destroy_process_group()
    elif rank.world_size == 1 and not args.no_finalize:
        _log_finalized(finalize(args.out, card=args.card))
    elif not args.no_finalize:
        logger.info("rank %d/%d done; run `recombinet finalize %s` once every rank has finished", rank.rank, rank.world_size, args.out)
    return 0


def _log_finalized(info: dict) -> None:
    totals = info["outcome_totals"]
    logger.info(
        "finalized release %s: %s kept, %s no detection, %s errors %s",
        info["release_version"], totals["kept"], totals["no_detection"], totals["error"], totals["errors_by_reason"] or "",
    )


def _run_finalize(args) -> int:
    from .finalize import finalize

    _log_finalized(
        finalize(
            args.folder,
            allow_partial=args.allow_partial,
            release_version=args.release_version,
            extra_recombination_configs=args.recombination_config,
            card=args.card,
        )
    )
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `recombinet`; returns the exit status (errors: message, status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None) or args.func  # card commands set `func`
    try:
        return int(handler(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        if args.verbose:
            raise
        print(f"recombinet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
