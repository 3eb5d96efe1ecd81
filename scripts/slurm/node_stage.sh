#!/usr/bin/env bash
# One node's share of a distributed loop stage, started by `srun --ntasks-per-node=1` (scripts/slurm/loop_iteration.sbatch):
# torchrun on this node with its node rank from SLURM, through scripts/launch_multi_gpu.sh (which prints the command).
#
#   node_stage.sh [--dry-run] grpo|dpo ITERATION CONFIG.yaml [key.sub=value ...]
# Needs MASTER_ADDR, MASTER_PORT and NGPUS in the environment (the sbatch script exports them).
set -euo pipefail
DRY=(); [ "${1:-}" = --dry-run ] && { DRY=(--dry-run); shift; }
STAGE=${1:?usage: node_stage.sh [--dry-run] grpo|dpo ITERATION CONFIG.yaml [key.sub=value ...]}
IT=${2:?iteration}
CONFIG=${3:?config}
shift 3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$HERE/../launch_multi_gpu.sh" "${DRY[@]}" --nnodes "${SLURM_NNODES:-1}" --node-rank "${SLURM_NODEID:-0}" \
  --master-addr "${MASTER_ADDR:?MASTER_ADDR must be set}" --master-port "${MASTER_PORT:?MASTER_PORT must be set}" \
  --nproc-per-node "${NGPUS:-8}" loop "$CONFIG" "$@" --stage "$STAGE" --iteration "$IT"
