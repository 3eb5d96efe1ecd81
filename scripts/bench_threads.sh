#!/usr/bin/env bash
# `veripo demo --quick` with torch's default thread count ("before", veripo.train.threads switched off) and with
# the thread choice ("after"), on an idle machine and under a bounded synthetic load (LOAD busy python processes,
# started LOAD_WARMUP_S seconds before the run, killed after).
#
#   scripts/bench_threads.sh [idle|load] [before|after] OUT_DIR      # one run; prints wall seconds and the load
# Environment: PY (default .venv/bin/python), LOAD (3), LOAD_WARMUP_S (5), CAP_S (600: a run is stopped there).
set -euo pipefail
MODE=${1:?idle|load}; WHICH=${2:?before|after}; OUT=${3:?out dir}
PY=${PY:-.venv/bin/python}; LOAD=${LOAD:-3}; CAP_S=${CAP_S:-600}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
if [ "$MODE" = load ]; then
  for _ in $(seq "$LOAD"); do "$PY" -c "while True: pass" & pids+=($!); done
  sleep "${LOAD_WARMUP_S:-5}"
fi
# before: torch's own default (the stage still logs a choice: what torch uses)
off='import torch, veripo.train.threads as t; t.apply_threads = lambda *a, **k: t.ThreadChoice(torch.get_num_threads(), torch.get_num_interop_threads(), "torch default")'
on='pass'
[ "$WHICH" = before ] && setup=$off || setup=$on
echo "start $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s.%N)
rc=0
env -u OMP_NUM_THREADS -u VERIPO_THREADS timeout "$CAP_S" "$PY" -c "
import sys
$setup
import torch
from veripo.cli import main
rc = main(['demo', '--quick', '--out', sys.argv[1]])
print('torch threads', torch.get_num_threads(), torch.get_num_interop_threads(), file=sys.stderr)
sys.exit(rc)" "$OUT" > "$OUT.log" 2>&1 || rc=$?
t1=$(date +%s.%N)
echo "end   $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s %s: %.1f s (rc %s)\n' "$MODE" "$WHICH" "$(echo "$t1 - $t0" | bc)" "$rc"
grep -E "torch threads" "$OUT.log" || true
