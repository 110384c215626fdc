"""Load a recombination config of a built release and save a preview grid.

    python examples/quickstart.py out/sample --config same-range-pt0.8 --out preview.png
"""

from __future__ import annotations

import argparse

from PIL import Image, ImageDraw

from recombinet_hf import load_dataset, set_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("release", help="release folder or Hub dataset id")
    parser.add_argument("--config", default="same-range-pt0.8")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", default="preview.png")
    parser.add_argument("--count", type=int, default=8, help="samples per row")
    parser.add_argument("--epochs", type=int, default=2, help="rows of the grid, one epoch each")
    parser.add_argument("--tile", type=int, default=192)
    args = parser.parse_args()

    dataset = load_dataset(args.release, args.config, split=args.split, seed=0)
    names = dataset.features["label"].names
    count = min(args.count, len(dataset))
    grid = Image.new("RGB", (count * args.tile, args.epochs * (args.tile + 16)), "white")
    draw = ImageDraw.Draw(grid)
    for epoch in range(args.epochs):
        set_epoch(dataset, epoch)
        for column in range(count):
            sample = dataset[column]
            image = sample["image"].copy()
            image.thumbnail((args.tile, args.tile))
            top = epoch * (args.tile + 16)
            grid.paste(image, (column * args.tile, top))
            draw.text((column * args.tile + 2, top + args.tile + 2), names[sample["label"]][:24], fill="black")
        print(f"epoch {epoch}: " + ", ".join(f"{s['fg_key']} on {s['bg_key']}" for s in dataset.select(range(count))))
    grid.save(args.out)
    print(f"{len(dataset)} samples of {args.config!r}; preview written to {args.out}")


if __name__ == "__main__":
    main()
