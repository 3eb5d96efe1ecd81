"""The cheap exploration engine of Sol-RL on the CPU: a dynamically quantised int8 copy of the policy.

    cheap = quantized_copy(model)                  # the policy is untouched; re-copy after each optimizer step
    engine = HFEngine(cheap, processor, ...)       # samples the large candidate pool (Sol-RL stage 1)

``torch.ao.quantization.quantize_dynamic`` swaps every ``nn.Linear`` for an int8 one: weights are quantised once
(per tensor, symmetric int8), activations per call, the matmul runs in int8 (fbgemm / qnnpack) -- PyTorch's own
CPU quantisation, no extra dependency. Embeddings, norms and the vision tower's convolutions stay float. A LoRA
(PEFT) policy is merged into the copy first, so the copy is one plain model. On a GPU the cheap engine is vLLM
with ``quantization="fp8"`` (or a quantised checkpoint) instead; this module is CPU-only by construction.

The copy's log-probs differ from the policy's (that is the point: cheaper, slightly off-policy), so the trained
subset's log-probs are recomputed with the full-precision policy and the mismatch is weighted by
``veripo.algos.truncated_is_weights``.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from veripo.errors import VeripoError


class QuantizationError(VeripoError):
    """The policy cannot be dynamically quantised here (not on the CPU, or no int8 engine in this torch build)."""


def _on_cpu(model: nn.Module) -> bool:
    return all(p.device.type == "cpu" for p in model.parameters())


def quantized_copy(model: nn.Module, dtype: torch.dtype = torch.qint8, skip: tuple[str, ...] = ()) -> nn.Module:
    """An eval-mode copy of ``model`` with its ``nn.Linear`` layers dynamically quantised to ``dtype`` (int8).

    ``skip``: module-name prefixes to keep in float (e.g. ``("lm_head",)`` to keep the output layer exact). The
    copy shares no storage with ``model`` and has no gradients. Raises ``QuantizationError`` for a model that
    is not on the CPU or a torch without a quantised engine.
    """
    if not _on_cpu(model):
        raise QuantizationError("rollout/quantized.py: int8 dynamic quantisation runs on the CPU only; on a GPU "
                                "use vLLM with an fp8 / quantised checkpoint as the cheap engine")
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines:
        raise QuantizationError("rollout/quantized.py: this torch build has no quantised CPU engine (fbgemm/qnnpack)")
    if torch.backends.quantized.engine == "none":
        torch.backends.quantized.engine = "fbgemm" if "fbgemm" in engines else engines[0]
    from torch.ao.quantization import quantize_dynamic

    work = copy.deepcopy(model)
    if hasattr(work, "merge_and_unload"):  # PEFT: fold the adapters into plain Linear layers first
        work = work.merge_and_unload()
    work.eval()
    for p in work.parameters():
        p.requires_grad_(False)
    names = {name for name, module in work.named_modules()
             if isinstance(module, nn.Linear) and not any(name == s or name.startswith(s + ".") for s in skip)}
    with warnings.catch_warnings():  # torch 2.1x flags torch.ao quantisation as deprecated (moving to torchao)
        warnings.simplefilter("ignore")
        return quantize_dynamic(work, names, dtype=dtype)


def quantized_linear_count(model: nn.Module) -> int:
    """How many dynamically quantised Linear layers ``model`` has (0 for a float model)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(isinstance(m, DynamicLinear) for m in model.modules())
