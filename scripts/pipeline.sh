#!/usr/bin/env bash
# The VerIPO loop as a multi-stage shell pipeline: one command per stage, for clusters where each stage is a
# separate job (submit each line as its own job, chained on the previous one). Every stage reads the previous
# stage's files from RUN_DIR and is idempotent: it returns at once when its output is complete, and resumes
# inside the stage when a partial run is there. Same config, same files as `veripo loop -c CONFIG`.
#
#   scripts/pipeline.sh CONFIG.yaml [key.sub=value ...]
#   ITERATIONS=2 scripts/pipeline.sh loop.yaml run_dir=runs/exp1
#
# VERIPO_LAUNCH replaces the `veripo` command (e.g. a cluster wrapper such as "srun veripo"); EVAL=0 skips the
# held-out evaluations. Several nodes: scripts/slurm/loop_iteration.sbatch runs one iteration as SLURM job steps
# (grpo and dpo through scripts/launch_multi_gpu.sh on every node, verify once), with the same idempotent stages.
set -euo pipefail
CONFIG=${1:?usage: scripts/pipeline.sh CONFIG.yaml [key.sub=value ...]}
shift
LAUNCH=${VERIPO_LAUNCH:-veripo}
ITERATIONS=${ITERATIONS:-$(python - "$CONFIG" "$@" <<'PY'
import sys
from veripo.config import load_config
from veripo.loop.config import LoopConfig
print(load_config(LoopConfig, sys.argv[1], sys.argv[2:]).iterations)
PY
)}
EVAL=${EVAL:-1}

[ "$EVAL" = 1 ] && $LAUNCH loop -c "$CONFIG" --stage eval-start "$@"
for it in $(seq 1 "$ITERATIONS"); do
  echo "== $(date +%H:%M:%S) iteration $it: grpo"
  $LAUNCH loop -c "$CONFIG" --stage grpo --iteration "$it" "$@"
  [ "$EVAL" = 1 ] && $LAUNCH loop -c "$CONFIG" --stage eval-grpo --iteration "$it" "$@"
  echo "== $(date +%H:%M:%S) iteration $it: verify"
  $LAUNCH loop -c "$CONFIG" --stage verify --iteration "$it" "$@"
  echo "== $(date +%H:%M:%S) iteration $it: dpo"
  $LAUNCH loop -c "$CONFIG" --stage dpo --iteration "$it" "$@"
  [ "$EVAL" = 1 ] && $LAUNCH loop -c "$CONFIG" --stage eval-dpo --iteration "$it" "$@"
done
echo "== $(date +%H:%M:%S) pipeline finished"
