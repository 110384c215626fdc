"""`recombinet card | preview | check | push`: subcommands added to the `recombinet` CLI.

`add_subcommands(subparsers)` is called by `recombinet_builder.cli`; `main(argv)` runs them
alone (`python -m recombinet_card.cli ...`). Each command sets `func(args) -> 0`; failures raise
`ValueError` (`ReleaseCheckError`, `CardCheckError`), `FileNotFoundError` or `RuntimeError`
(`PushError`), which the `recombinet` entry point prints as `recombinet CMD: error: ...` (status 2). The push token comes from `HF_TOKEN` / `hf auth login`
only: there is deliberately no `--token` option (command lines end up in shell histories and logs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def _card(args: argparse.Namespace) -> int:
    from .card import render_card

    path = render_card(args.dir, repo_id=args.repo_id, images=not args.no_images)
    print(f"Wrote {path}" + ("" if args.no_images else f" and {Path(args.dir) / 'images'}/*.png"))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from .preview import write_preview

    print(f"Wrote {write_preview(args.dir, args.config, out=args.out, split=args.split, seed=args.seed)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .checks import check_release
    from .schema import check_card

    reports = check_release(args.dir)
    check_card(args.dir)
    largest = max((report.max_row_group_bytes for report in reports), default=0)
    print(f"{args.dir}: {len(reports)} shard(s) OK (largest row group {largest / 2**20:.1f} MiB); card OK")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .push import push_to_hub

    sha = push_to_hub(
        args.dir, args.repo_id, private=args.private, tag=args.revision_tag,
        commit_message=args.commit_message, render=not args.no_render,
    )
    print(f"Pushed {args.dir} to {args.repo_id} at commit {sha}")
    return 0


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add `card`, `preview`, `check` and `push` to a `recombinet` subparsers object."""
    card = subparsers.add_parser("card", help="render the dataset card (README.md + images/*.png) of a release")
    card.add_argument("dir", type=Path, help="release folder")
    card.add_argument("--repo-id", default=None, help="Hub id shown in the loading examples (default ORG/NAME)")
    card.add_argument("--no-images", action="store_true", help="do not redraw images/preview.png and images/fg_ratio.png")
    card.set_defaults(func=_card, command="card")

    preview = subparsers.add_parser("preview", help="draw recombined samples of one config to a PNG")
    preview.add_argument("dir", type=Path, help="release folder")
    preview.add_argument("config", help="recombination config, e.g. same-range-pt0.8")
    preview.add_argument("--out", type=Path, default=None, help="PNG path (default DIR/images/preview-CONFIG.png)")
    preview.add_argument("--split", default="train", help="split to draw from (default train)")
    preview.add_argument("--seed", type=int, default=0, help="recombination seed (default 0)")
    preview.set_defaults(func=_preview, command="preview")

    check = subparsers.add_parser("check", help="check shards (row groups, sha256) and card metadata offline")
    check.add_argument("dir", type=Path, help="release folder")
    check.set_defaults(func=_check, command="check")

    push = subparsers.add_parser(
        "push",
        help="push a release to a Hub dataset repo in one commit and tag it",
        description="Token: HF_TOKEN or `hf auth login` (never a command-line option).",
    )
    push.add_argument("dir", type=Path, help="release folder")
    push.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repo (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--revision-tag", default=None, help="release tag (default: release_version of recombinet.json)")
    push.add_argument("--commit-message", default=None, help="commit message (default: RecombiNet release TAG)")
    push.add_argument("--no-render", action="store_true", help="push README.md as it is, without re-rendering the card")
    push.set_defaults(func=_push, command="push")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recombinet", description="RecombiNet release: card, preview, check, push.")
    add_subcommands(parser.add_subparsers(dest="subcommand", required=True))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one card command; errors are printed as one line and give status 2 (like `recombinet`)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"recombinet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
