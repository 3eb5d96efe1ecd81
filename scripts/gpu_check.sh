#!/usr/bin/env bash
# GPU check (issue 18): throughput, MFU and peak memory of veripo's HF engine, GRPO and DPO on a Qwen2.5-VL-7B
# shape twin, and CPU/GPU agreement on the tiny kit. One command, no network:
#
#     bash scripts/gpu_check.sh [--json gpu_check.json] [--phases generate,grpo-lora,...]   # on a CUDA machine
#     bash scripts/gpu_check.sh --cpu                                                       # CI's dry run
#
# The Python is $PYTHON, else the repository's .venv, else python3. It must have torch, torchvision,
# transformers, peft, accelerate and safetensors; what else veripo needs on this path (PyAV, PyYAML, tqdm,
# numpy) and veripo itself are installed offline when missing: the wheels from $GPU_CHECK_WHEELS (default
# scripts/wheels/, e.g. filled beforehand with `pip download --no-deps av==18.1.0 pyyaml tqdm -d scripts/wheels`,
# about 37 MB) and this checkout (`pip install --no-deps --no-build-isolation`). See scripts/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WHEELS="${GPU_CHECK_WHEELS:-scripts/wheels}"

missing() {  # the import names among "$@" that $PYTHON cannot import
    "$PYTHON" - "$@" <<'PY'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
PY
}

need=$(missing torch torchvision transformers peft accelerate safetensors)
if [[ -n "$need" ]]; then
    echo "gpu_check: $PYTHON lacks $need (these must be installed, matching the machine's CUDA)" >&2
    exit 2
fi
extra=$(missing numpy yaml tqdm av)
if [[ -n "$extra" ]]; then
    if ! compgen -G "$WHEELS/*.whl" > /dev/null; then
        echo "gpu_check: $PYTHON lacks $extra and $WHEELS/ has no wheels to install them from" >&2
        exit 2
    fi
    "$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" $(echo "$extra" | sed 's/\byaml\b/pyyaml/')
fi
if [[ -n "$(missing veripo)" ]] || ! "$PYTHON" -c "import veripo.data" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index -e .
fi
exec "$PYTHON" scripts/gpu_check.py "$@"
