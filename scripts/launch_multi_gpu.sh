#!/usr/bin/env bash
# Example: a training stage (grpo | dpo | sft) on one 8-GPU node, with torch DDP or DeepSpeed ZeRO-2/3.
#
#   scripts/launch_multi_gpu.sh grpo CONFIG.yaml [key.sub=value ...]               # torchrun + DDP
#   scripts/launch_multi_gpu.sh sft CONFIG.yaml [key.sub=value ...]
#   scripts/launch_multi_gpu.sh dpo CONFIG.yaml [key.sub=value ...]
#   BACKEND=deepspeed ZERO=3 scripts/launch_multi_gpu.sh dpo CONFIG.yaml           # deepspeed launcher + ZeRO-3
#   LAUNCHER=torchrun BACKEND=deepspeed scripts/launch_multi_gpu.sh dpo CONFIG.yaml   # torchrun also runs ZeRO
#
# What turns it on is the stage config's `dist` section (veripo.train.distributed.DistConfig; `veripo grpo
# --show-config` lists it), given here as dotted overrides - the same keys work in the YAML file:
#   dist.backend            none (default: one process) | ddp | deepspeed
#   dist.deepspeed_config   scripts/deepspeed/zero2.json (optimiser states + gradients partitioned; LoRA or <=3B full)
#                           scripts/deepspeed/zero3.json (parameters partitioned too; full fine-tuning of 7B)
#   dist.deepspeed_overrides  keys merged over the JSON, e.g. 'dist.deepspeed_overrides={zero_optimization: {stage: 3}}'
#   dist.find_unused_parameters / dist.timeout_minutes
# The launcher starts one process per GPU and sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT;
# each process trains on its share of every step's prompts / rows / pairs (grpo: rollout.prompts_per_step, sft and
# dpo: batch_size must be a multiple of the number of GPUs) and rank 0 writes rollouts, metrics and checkpoints.
# GRPO with several processes: rollout.controller and rollout.prune must stay none (not supported yet).
#
# Batch sizes: the trainer accumulates micro-batches itself (optim.micro_batch_size sequences per forward), so the
# JSONs keep gradient_accumulation_steps=1; gradient_clipping and train_micro_batch_size_per_gpu are filled in
# from optim.grad_clip / optim.micro_batch_size. bf16 is on in the JSONs (load the policy with model.dtype=auto or
# bfloat16); DeepSpeed keeps fp32 master weights.
#
# Environment: NGPUS (default 8), LAUNCHER (torchrun | deepspeed; default torchrun for ddp, deepspeed for
# deepspeed), BACKEND (ddp | deepspeed; default ddp), ZERO (2 | 3; default 2), MASTER_PORT (default 29500).
set -euo pipefail
STAGE=${1:?usage: scripts/launch_multi_gpu.sh grpo|dpo|sft CONFIG.yaml [key.sub=value ...]}
CONFIG=${2:?usage: scripts/launch_multi_gpu.sh grpo|dpo|sft CONFIG.yaml [key.sub=value ...]}
case "$STAGE" in
  grpo|dpo|sft) ;;
  *) echo "multi-GPU launch is wired for the grpo, dpo and sft stages, got $STAGE" >&2; exit 2 ;;
esac
shift 2
NGPUS=${NGPUS:-8}
BACKEND=${BACKEND:-ddp}
ZERO=${ZERO:-2}
MASTER_PORT=${MASTER_PORT:-29500}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case "$BACKEND" in
  ddp)       DIST=(dist.backend=ddp) ; DEFAULT_LAUNCHER=torchrun ;;
  deepspeed) DIST=(dist.backend=deepspeed "dist.deepspeed_config=$HERE/deepspeed/zero$ZERO.json") ; DEFAULT_LAUNCHER=deepspeed ;;
  *) echo "BACKEND must be ddp or deepspeed, got $BACKEND" >&2; exit 2 ;;
esac
LAUNCHER=${LAUNCHER:-$DEFAULT_LAUNCHER}

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}        # 8 processes x all cores would oversubscribe the CPU
export TOKENIZERS_PARALLELISM=false

case "$LAUNCHER" in
  torchrun)
    # --no-python: run the `veripo` console script in each process (the env vars above reach it).
    exec torchrun --standalone --nproc_per_node "$NGPUS" --no-python \
      veripo "$STAGE" -c "$CONFIG" "${DIST[@]}" "$@" ;;
  deepspeed)
    # --no_local_rank: veripo reads LOCAL_RANK from the environment, not a --local_rank flag.
    exec deepspeed --num_gpus "$NGPUS" --master_port "$MASTER_PORT" --no_python --no_local_rank \
      veripo "$STAGE" -c "$CONFIG" "${DIST[@]}" "$@" ;;
  *) echo "LAUNCHER must be torchrun or deepspeed, got $LAUNCHER" >&2; exit 2 ;;
esac
