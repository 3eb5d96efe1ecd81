"""veripo: Verifier-guided Iterative Policy Optimisation for Video-LLMs.

GRPO (explore) -> Rollout-Aware Verifier (judge rollouts, build contrastive pairs) -> DPO (align), iterated.
Importing veripo loads torch (to make torchvision importable on CPU, see _torchvision_shim); transformers,
the trainers, vLLM and DeepSpeed load only when used.
"""
import os as _os

# qwen-vl-utils reads this at import time; decord is the reader that works on CPU (torchcodec does not).
_os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")

__version__ = "0.1.0"


def _prepare_torchvision() -> None:
    try:
        from veripo._torchvision_shim import ensure_torchvision_importable
    except ImportError:  # pragma: no cover - torch missing: nothing to shim
        return
    try:
        ensure_torchvision_importable()
    except ImportError:
        pass


_prepare_torchvision()
