"""Sampling ``n`` completions of each prompt with one prefill per prompt, not one per completion.

``generate(num_return_sequences=n)`` copies every prompt ``n`` times before its first forward, so the prompt's
video goes through the vision tower and its tokens through every layer ``n`` times (GRPO: G = 8). Here the
prompts run once, without their last token, through the decoder (not the LM head) into a key/value cache; the cache's rows are repeated ``n`` times
(row-major, as ``num_return_sequences`` orders them) and ``generate`` continues from it on the ``n``-fold rows,
reading only each row's last prompt token before it samples. The model sees the same tokens at the same
positions (Qwen2.5-VL: its 3-D position offsets ``rope_deltas``, computed by the prefill, repeated with the
rows; transformers' own path for continuing from a cache), so the completions are those of the plain call up to
float rounding, drawn from the same random stream.
"""
from __future__ import annotations

from typing import Any

import torch

from veripo.models.kv_cache import cache_argument, has_visual_inputs, output_cache, vl_body
from veripo.sequences import TOKEN_KEYS


def can_share_prefill(model, inputs: dict[str, Any], n: int) -> bool:
    """Worth it (``n`` > 1, a prompt longer than one token) and known to give the plain call's completions
    (visual rows need a model that keeps ``rope_deltas``, as Qwen2-VL / Qwen2.5-VL do)."""
    if n <= 1 or inputs["input_ids"].shape[1] < 2:
        return False
    return not has_visual_inputs(inputs) or vl_body(model, "rope_deltas") is not None


@torch.no_grad()
def prefilled_generate_kwargs(model, inputs: dict[str, Any], n: int) -> dict[str, Any]:
    """The keyword arguments for ``model.generate`` (besides the sampling ones, and with
    ``num_return_sequences=1``) that continue ``inputs``' prompts, each repeated ``n`` times, from one prefill."""
    head = {k: (v[:, :-1] if k in TOKEN_KEYS else v)
            for k, v in inputs.items()}
    body = getattr(model, "base_model", model)  # HF's decoder below the LM head: the prefill needs no logits
    out = body(**head, use_cache=True) if body is not model else model(**head, use_cache=True, logits_to_keep=1)
    cache = output_cache(out)
    cache.batch_repeat_interleave(n)
    holder = vl_body(model, "rope_deltas")
    if holder is not None:  # what generate would hold after its own prefill of the n-fold rows
        if has_visual_inputs(inputs):  # the prefill just computed them, one per prompt
            holder.rope_deltas = holder.rope_deltas.repeat_interleave(n, 0)
        else:  # text rows: no offset (an earlier call's deltas may still be there)
            holder.rope_deltas = torch.zeros(inputs["input_ids"].shape[0] * n, 1, dtype=torch.long,
                                             device=inputs["input_ids"].device)
    rows = {k: v.repeat_interleave(n, 0) for k, v in inputs.items()
            if k in TOKEN_KEYS}
    return {**rows, cache_argument(model): cache}
