#!/bin/bash
# Submit the build array and its dependent finalize job.
#   SOURCE=/data/imagenet OUT=/shared/recombinet/imagenet-1.0.0 bash examples/slurm/submit.sh
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p logs
build=$(sbatch --parsable --export=ALL build.sbatch)
build=${build%%;*}  # strip ";cluster" on federated setups
sbatch --export=ALL --dependency=afterok:"$build" finalize.sbatch
echo "build array $build submitted; finalize runs when every task has succeeded"
