#!/bin/bash
# One node, 8 GPUs: one rank per GPU (cuda:$LOCAL_RANK), shards round-robin over ranks;
# after a gloo barrier rank 0 finalizes (recombinet.json + card). Rerun the same command
# after any crash: finished shards are skipped.
#
# Cost (ForAug's figure, grounded-sam + LaMa on one H100, batch size 1): 5,338.6 img/h/GPU.
#   ImageNet train 1,281,167 images: 240 GPU-hours = ~30 h on 8 H100s
#   ImageNet val 50,000 images: 9.4 GPU-hours = ~1.2 h on 8 H100s
#   At an illustrative 2.50 $/GPU-hour: ~625 $ for train + val.
# Measure your own rate first: add `--limit 2000 --out /tmp/rn-probe` and read the
# progress bar's img/s (per rank) or outcomes/*.json `images_per_s`.
#
# Several nodes (shared filesystem for --out):
#   torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=$HEAD:29500 \
#       -m recombinet_builder build ...same options...
set -euo pipefail

SOURCE=${SOURCE:-/data/imagenet}
OUT=${OUT:-/shared/recombinet/imagenet-1.0.0}
LAMA=${LAMA:-/shared/models/big-lama.pt}
GPUS=${GPUS:-8}

torchrun --standalone --nproc_per_node="$GPUS" -m recombinet_builder build \
    --source "$SOURCE" \
    --out "$OUT" \
    --segment grounded-sam \
    --inpaint lama --inpaint-option "model_path=$LAMA" \
    --batch-size 8 \
    --shard-size 1000 \
    --num-workers 4 \
    --release-version 1.0.0
