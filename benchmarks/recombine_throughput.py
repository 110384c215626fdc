"""Throughput of recombination relative to plainly decoding the foregrounds, side by side.

    python benchmarks/recombine_throughput.py [--size 500 375] [--images 24] [--repeats 3]

Builds a synthetic release of ImageNet-like image sizes in a temp folder, then times per
sample (same process, interleaved repeats, best of `--repeats`):
  decode   plain `datasets` decoding of the foreground pixels (the floor)
  pre      same-range-pt1.0 (paste at full resolution, then a 224 crop)
  post     same-range-pt1.0-post (224 crop of the background first, paste onto it)
  rot      all-range-pt1.0-rot30 (rotation + soft edges)
and prints each as a ratio to `decode` and `pre`/`post` to each other.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import datasets  # noqa: E402

from recombinet_hf import RandomResizedCrop, load_dataset  # noqa: E402
from synthetic import make_release  # noqa: E402


def per_sample_seconds(dataset, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for index in range(len(dataset)):
            dataset[index]["image"].load()  # PIL decodes lazily: force the pixels
        best = min(best, (time.perf_counter() - start) / len(dataset))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=(500, 375))
    parser.add_argument("--images", type=int, default=24, help="images per class (3 classes)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as folder:
        release = make_release(Path(folder) / "release", per_class=args.images, size=tuple(args.size), splits=("train",), num_shards=1)
        crop = RandomResizedCrop(224)
        contenders = {
            "decode": datasets.load_dataset(str(release), "foregrounds", split="train"),
            "pre": load_dataset(release, "same-range-pt1.0", split="train", background_transform=crop),
            "post": load_dataset(release, "same-range-pt1.0-post", split="train", background_transform=crop),
            "rot": load_dataset(release, "all-range-pt1.0-rot30", split="train", background_transform=crop),
        }
        times = {name: per_sample_seconds(dataset, args.repeats) for name, dataset in contenders.items()}
    print(f"{3 * args.images} samples of {args.size[0]}x{args.size[1]}, best of {args.repeats}")
    for name, seconds in times.items():
        print(f"{name:7s} {seconds * 1e3:8.2f} ms/sample   x{seconds / times['decode']:.2f} of decode")
    print(f"pre/post ratio: {times['pre'] / times['post']:.2f}")


if __name__ == "__main__":
    main()
