"""How a transformers model takes and returns its key/value cache, and where a Qwen2-VL-family model keeps its
3-D position state: what the shared-prompt training forwards (``veripo.prompt_sharing``) and the shared prefill
in sampling (``veripo.generation.shared_prefill``) both need to run a prompt once and continue from its cache.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch

VISUAL_INPUTS = ("pixel_values_videos", "pixel_values")  # the keys that carry a row's video or image


def has_visual_inputs(inputs: dict[str, Any]) -> bool:
    return any(k in inputs for k in VISUAL_INPUTS)


def vl_body(model, *attributes: str) -> Any | None:
    """The submodule (below LoRA / DDP wrappers) that computes Qwen2-VL-style 3-D rotary positions
    (``get_rope_index``) and has every one of ``attributes`` (``rope_deltas``, ``compute_3d_position_ids``); None
    for a model without one."""
    for module in model.modules():
        if hasattr(module, "get_rope_index") and all(hasattr(module, a) for a in attributes):
            return module
    return None


def cache_argument(model) -> str:
    """transformers 5.24 calls the forward's cache ``cache`` (``past_key_values`` deprecated); 5.17 only knows the
    old name."""
    forward = getattr(model, "module", model).forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def output_cache(out) -> Any:
    """The cache a forward returned (``cache`` in transformers 5.24, ``past_key_values`` before)."""
    return out.cache if getattr(out, "cache", None) is not None else out.past_key_values


def select_cache_rows(cache, index) -> None:
    """Keep rows ``index`` (repeats allowed) of every layer of ``cache``, in place: ``batch_select_indices`` with
    ``index_select``, whose backward (``index_add_``) is about 10x faster on CPU than the advanced indexing's
    (``index_put_`` with accumulation) that transformers' own ``batch_select_indices`` uses. A cache whose layers
    do not hold plain ``keys`` / ``values`` tensors gets transformers' method."""
    layers = getattr(cache, "layers", None)
    if not layers or not all(_plain_layer(layer) for layer in layers):
        cache.batch_select_indices(index)
        return
    for layer in layers:
        if layer.keys.numel():
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)


def _plain_layer(layer) -> bool:
    """A layer that selects rows the way transformers' ``DynamicLayer`` does (its method not overridden)."""
    from transformers.cache_utils import DynamicLayer  # in every transformers veripo supports (>= 5.16)

    return (type(layer).batch_select_indices is DynamicLayer.batch_select_indices
            and torch.is_tensor(getattr(layer, "keys", None)) and torch.is_tensor(getattr(layer, "values", None)))
