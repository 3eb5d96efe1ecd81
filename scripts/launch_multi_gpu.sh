#!/usr/bin/env bash
# A training stage (grpo | dpo | sft, or `loop` for one stage of the loop) on one or several nodes, with torch DDP or
# DeepSpeed ZeRO-2/3. It prints the exact command it runs ("+ ..."), then runs it; --dry-run only prints it.
#
#   scripts/launch_multi_gpu.sh grpo CONFIG.yaml [key.sub=value ...]                  # one 8-GPU node, torchrun + DDP
#   scripts/launch_multi_gpu.sh --backend deepspeed --zero 3 dpo CONFIG.yaml          # deepspeed launcher + ZeRO-3
#   # several nodes with torchrun: the same line on every node, only --node-rank differs
#   scripts/launch_multi_gpu.sh --nnodes 2 --node-rank 0 --master-addr node0 --master-port 29500 grpo CONFIG.yaml
#   scripts/launch_multi_gpu.sh --nnodes 2 --node-rank 1 --master-addr node0 --master-port 29500 grpo CONFIG.yaml
#   # several nodes with the DeepSpeed launcher: once, on the first node; it starts the others over ssh (pdsh)
#   scripts/launch_multi_gpu.sh --backend deepspeed --hostfile hosts.txt --master-addr node0 dpo CONFIG.yaml
#   # one stage of the loop (what scripts/pipeline.sh and scripts/slurm/ run)
#   scripts/launch_multi_gpu.sh --nnodes 2 --node-rank 0 --master-addr node0 loop CONFIG.yaml --stage grpo --iteration 1
#
# Flags (each also read from the environment variable in brackets, the flag wins):
#   --nproc-per-node N [NGPUS, default 8]    processes per node, one per GPU
#   --nnodes N [NNODES, default 1]            torchrun: nodes in the job
#   --node-rank R [NODE_RANK, default 0]      torchrun: this node's index, 0..N-1 (rank 0's node hosts the store)
#   --master-addr HOST [MASTER_ADDR]          address of node 0 that every node can reach (needed when N > 1)
#   --master-port P [MASTER_PORT, 29500]      a free TCP port on node 0
#   --hostfile FILE [HOSTFILE]                DeepSpeed: lines "host slots=G"; the launcher ssh-es into each host
#   --backend ddp|deepspeed [BACKEND, ddp]    --zero 2|3 [ZERO, 2]   --launcher torchrun|deepspeed [LAUNCHER]
#   --dry-run                                 print the command, run nothing
#
# What turns distribution on is the stage config's `dist` section (veripo.train.distributed.DistConfig; `veripo grpo
# --show-config` lists it), given here as dotted overrides - the same keys work in the YAML file:
#   dist.backend            none (default: one process) | ddp | deepspeed
#   dist.deepspeed_config   scripts/deepspeed/zero2.json (optimiser states + gradients partitioned; LoRA or <=3B full)
#                           scripts/deepspeed/zero3.json (parameters partitioned too; full fine-tuning of 7B)
#   dist.deepspeed_overrides  keys merged over the JSON, e.g. 'dist.deepspeed_overrides={zero_optimization: {stage: 3}}'
#   dist.find_unused_parameters / dist.timeout_minutes
# For `loop` the overrides go into the stage's section (grpo.dist.backend=ddp dpo.dist.backend=ddp); verify and the
# evaluations run in one process, so start `loop --stage verify` with plain `veripo`, not with this script.
# The launcher starts one process per GPU and sets RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE / MASTER_ADDR /
# MASTER_PORT; each process trains on its share of every step's prompts / rows / pairs (grpo: rollout.prompts_per_step,
# sft and dpo: batch_size must be a multiple of the number of processes, all nodes together) and global rank 0 alone
# writes rollouts, metrics and checkpoints.
#
# Files (README "Running on a cluster"): model.path, the data files and their videos must be readable on every node;
# out_dir / run_dir must be ONE shared directory (a shared file system) for the loop and for --resume: the next stage
# and a resumed one read there what rank 0 wrote, and DeepSpeed writes its partitioned checkpoint from every rank.
#
# Batch sizes: the trainer accumulates micro-batches itself (optim.micro_batch_size sequences per forward), so the
# JSONs keep gradient_accumulation_steps=1; gradient_clipping and train_micro_batch_size_per_gpu are filled in
# from optim.grad_clip / optim.micro_batch_size. bf16 is on in the JSONs (load the policy with model.dtype=auto or
# bfloat16); DeepSpeed keeps fp32 master weights.
#
# Threads: VERIPO_THREADS=auto (default here) gives each process the node's free cores / processes per node
# (veripo/train/threads.py), ignoring the OMP_NUM_THREADS=1 torchrun sets on its own; set VERIPO_THREADS=N to force.
set -euo pipefail
usage="usage: scripts/launch_multi_gpu.sh [--nnodes N --node-rank R --master-addr HOST --master-port P] [--hostfile F]
       [--nproc-per-node G] [--backend ddp|deepspeed] [--zero 2|3] [--launcher torchrun|deepspeed] [--dry-run]
       grpo|dpo|sft|loop CONFIG.yaml [key.sub=value ...]"
NGPUS=${NGPUS:-8}; NNODES=${NNODES:-1}; NODE_RANK=${NODE_RANK:-0}; MASTER_ADDR=${MASTER_ADDR:-}
MASTER_PORT=${MASTER_PORT:-29500}; HOSTFILE=${HOSTFILE:-}; BACKEND=${BACKEND:-ddp}; ZERO=${ZERO:-2}
LAUNCHER=${LAUNCHER:-}; DRY_RUN=0
need() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "$1 needs a value" >&2; echo "$usage" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --nproc-per-node|--nproc_per_node|--ngpus) need "$@"; NGPUS=$2; shift 2 ;;
    --nnodes) need "$@"; NNODES=$2; shift 2 ;;
    --node-rank|--node_rank) need "$@"; NODE_RANK=$2; shift 2 ;;
    --master-addr|--master_addr) need "$@"; MASTER_ADDR=$2; shift 2 ;;
    --master-port|--master_port) need "$@"; MASTER_PORT=$2; shift 2 ;;
    --hostfile) need "$@"; HOSTFILE=$2; shift 2 ;;
    --backend) need "$@"; BACKEND=$2; shift 2 ;;
    --zero) need "$@"; ZERO=$2; shift 2 ;;
    --launcher) need "$@"; LAUNCHER=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    --*) echo "unknown flag $1" >&2; echo "$usage" >&2; exit 2 ;;
    *) break ;;
  esac
done
STAGE=${1:?$usage}
CONFIG=${2:?$usage}
shift 2
case "$STAGE" in
  grpo|dpo|sft|loop) ;;
  *) echo "multi-GPU launch is wired for the grpo, dpo and sft stages (and loop --stage grpo|dpo), got $STAGE" >&2; exit 2 ;;
esac
for v in NGPUS NNODES NODE_RANK MASTER_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "$v must be a whole number, got '${!v}'" >&2; exit 2; }
done
[ "$NODE_RANK" -lt "$NNODES" ] || { echo "--node-rank $NODE_RANK is not in 0..$((NNODES - 1)) (--nnodes $NNODES)" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# the dist overrides: for a stage command at top level, for `loop` inside the grpo / dpo sections
case "$BACKEND" in
  ddp)       KEYS=(dist.backend=ddp) ; DEFAULT_LAUNCHER=torchrun ;;
  deepspeed) KEYS=(dist.backend=deepspeed "dist.deepspeed_config=$HERE/deepspeed/zero$ZERO.json") ; DEFAULT_LAUNCHER=deepspeed ;;
  *) echo "--backend must be ddp or deepspeed, got $BACKEND" >&2; exit 2 ;;
esac
DIST=()
if [ "$STAGE" = loop ]; then
  for k in "${KEYS[@]}"; do DIST+=("grpo.$k" "dpo.$k"); done
else
  DIST=("${KEYS[@]}")
fi
LAUNCHER=${LAUNCHER:-$DEFAULT_LAUNCHER}

export VERIPO_THREADS=${VERIPO_THREADS:-auto}   # cores / processes per node (torchrun would set OMP_NUM_THREADS=1)
export TOKENIZERS_PARALLELISM=false

case "$LAUNCHER" in
  torchrun)
    [ -z "$HOSTFILE" ] || { echo "--hostfile is for the deepspeed launcher; torchrun takes --nnodes/--node-rank/--master-addr on each node" >&2; exit 2; }
    if [ "$NNODES" -gt 1 ]; then
      [ -n "$MASTER_ADDR" ] || { echo "--nnodes $NNODES needs --master-addr (node 0's address, reachable from every node)" >&2; exit 2; }
      WHERE=(--nnodes "$NNODES" --node-rank "$NODE_RANK" --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT")
    elif [ -n "$MASTER_ADDR" ]; then
      WHERE=(--nnodes 1 --node-rank 0 --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT")
    else
      WHERE=(--standalone)
    fi
    # --no-python: run the `veripo` console script in each process (the env vars above reach it).
    CMD=(torchrun "${WHERE[@]}" --nproc-per-node "$NGPUS" --no-python veripo "$STAGE" -c "$CONFIG" "${DIST[@]}" "$@") ;;
  deepspeed)
    [ "$NNODES" -eq 1 ] || [ -n "$HOSTFILE" ] || { echo "the deepspeed launcher takes the nodes from --hostfile, not --nnodes" >&2; exit 2; }
    if [ -n "$HOSTFILE" ]; then
      [ -f "$HOSTFILE" ] || { echo "hostfile not found: $HOSTFILE" >&2; exit 2; }
      # the launcher forwards only the variables named in ./.deepspeed_env (or ~/.deepspeed_env) to the other nodes
      WHERE=(--hostfile "$HOSTFILE" ${MASTER_ADDR:+--master_addr "$MASTER_ADDR"} --master_port "$MASTER_PORT")
    else
      WHERE=(--num_gpus "$NGPUS" --master_port "$MASTER_PORT")
    fi
    # --no_local_rank: veripo reads LOCAL_RANK from the environment, not a --local_rank flag.
    CMD=(deepspeed "${WHERE[@]}" --no_python --no_local_rank veripo "$STAGE" -c "$CONFIG" "${DIST[@]}" "$@") ;;
  *) echo "--launcher must be torchrun or deepspeed, got $LAUNCHER" >&2; exit 2 ;;
esac

printf '+'; printf ' %q' "${CMD[@]}"; printf '\n'
[ "$DRY_RUN" = 1 ] && exit 0
exec "${CMD[@]}"
