#!/usr/bin/env bash
# Create .venv with the CPU stack veripo is tested on (notes: torch and torchvision MUST be pinned in one
# pip command, or pip pulls a multi-GB CUDA build). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import torch, torchvision; assert torch.__version__.startswith('2.13.0')" 2>/dev/null; then
  pip install -q "torch==2.13.0" "torchvision==0.28.0"
fi
pip install -q -c scripts/constraints-cpu.txt -e ".[dev]"
# lmms-eval 0.7.3, without its dependencies: a test-time reference only (tests/test_eval_lmms_parity.py loads its
# task files to check `veripo eval --match official`; veripo never imports it).
if ! python -c "import importlib.metadata as m; assert m.version('lmms-eval') == '0.7.3'" 2>/dev/null; then
  pip install -q --no-deps "lmms-eval==0.7.3"
fi
python -c "import veripo, torch, transformers; print('veripo env ready: torch', torch.__version__, 'transformers', transformers.__version__)"
