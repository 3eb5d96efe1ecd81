"""Make ``import torchvision`` work on a CPU-only torch.

Every torchvision wheel on PyPI is CUDA-linked: its ``_C.so`` needs ``libtorch_cuda.so``. On a CPU
build of torch the import then dies in ``torchvision/_meta_registrations.py`` with
``RuntimeError: operator torchvision::nms does not exist``. transformers' ``Qwen2VLVideoProcessor``
and ``qwen_vl_utils`` both need torchvision, so veripo defines the two operator schemas that the
import registers fake kernels for (``nms`` and ``qnms``) before anything imports torchvision.
Transforms work; compiled ops (nms, roi_align, decode_jpeg) raise, and veripo does not use them.

Where torchvision's native library loads (a CUDA machine) this is a no-op.
"""
from __future__ import annotations

import glob
import importlib.util
import os

_LIBRARY = None
_STATE: str | None = None


def ensure_torchvision_importable() -> str:
    """Return ``"absent"``, ``"native"`` or ``"shimmed"`` and leave torchvision importable."""
    global _LIBRARY, _STATE
    if _STATE is not None:
        return _STATE
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        _STATE = "absent"
        return _STATE
    import torch

    for so in glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so")):
        try:
            torch.ops.load_library(so)
            _STATE = "native"
            return _STATE
        except (OSError, ImportError, RuntimeError):
            pass
    try:
        _LIBRARY = torch.library.Library("torchvision", "DEF")
        _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    except RuntimeError:  # already defined by someone else in this process
        pass
    _STATE = "shimmed"
    return _STATE
