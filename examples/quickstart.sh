#!/usr/bin/env bash
# Set up, build the release of the embedded sample (20 real ImageNet photos, CPU defaults:
# salient segmentation + telea inpainting), load `same-range-pt0.8` and write preview.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
.venv/bin/recombinet build --source sample --out out/sample
.venv/bin/python examples/quickstart.py out/sample --config same-range-pt0.8 --out preview.png
