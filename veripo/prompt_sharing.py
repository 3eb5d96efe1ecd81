"""Training forwards that run each prompt once for all the completions that share it.

GRPO scores G completions of one prompt, DPO a chosen and a rejected response: a plain forward over the
concatenated ``prompt + completion`` rows computes the prompt (its video patches through the vision tower, its
tokens through every layer) once per row. Here each micro-batch's distinct prompts go through the model once,
with a key/value cache; the cache's rows are then gathered to one per completion and the completions run on
top of it. With ``h = f(prompt)`` shared,

    logits(completion_t | prompt, completion_<t) is the same function of the weights as in the plain forward,

so log-probs and gradients are those of the plain forward up to float rounding (autograd sums the G rows'
gradients through the gathered cache into the one prompt forward). The cost of the prompt part falls by the
number of completions per prompt: for GRPO's 8 x 8 rollouts of 139-token prompts and 40-token completions the
update runs 3,672 token positions instead of 11,456 (``scripts/bench_grpo_vs_trl.py``; BENCHMARKS.md).

Positions: those the plain forward gives the full rows (Qwen2.5-VL's 3-D rotary positions from the model's own
``compute_3d_position_ids``; 0, 1, ... for text-only rows), split into the prompt part and the completion part. A model without ``compute_3d_position_ids`` that takes visual inputs, or one with gradient
checkpointing (which turns the cache off), falls back to the plain forward: :func:`can_share_prompts`.
"""
from __future__ import annotations

from typing import Any

import torch

from veripo.models.kv_cache import cache_argument, has_visual_inputs, output_cache, select_cache_rows, vl_body

_POSITIONS = "compute_3d_position_ids"


def can_share_prompts(model, inputs: dict[str, Any]) -> bool:
    """Whether :func:`shared_prompt_logits` gives the plain forward's logits for this model and these inputs."""
    checkpointing = getattr(model, "is_activation_checkpointing", None)
    if checkpointing is None:  # transformers before the rename
        checkpointing = getattr(model, "is_gradient_checkpointing", False)
    if checkpointing:
        return False
    return not has_visual_inputs(inputs) or vl_body(model, _POSITIONS) is not None


def full_positions(model, inputs: dict[str, Any]) -> torch.Tensor:
    """The position ids the plain forward gives the full rows: Qwen2.5-VL's 3-D ones [3, N, P+C] from its own
    ``compute_3d_position_ids`` when the rows carry visual tensors; else 0, 1, ... on every row ([3, N, P+C] for
    Qwen2.5-VL's text model, [N, P+C] for a plain causal LM), which is what HF builds when given none."""
    inner = vl_body(model, _POSITIONS)
    ids = inputs["input_ids"]
    if inner is not None and has_visual_inputs(inputs):
        return inner.compute_3d_position_ids(
            input_ids=ids, image_grid_thw=inputs.get("image_grid_thw"), video_grid_thw=inputs.get("video_grid_thw"),
            second_per_grid_ts=inputs.get("second_per_grid_ts"), inputs_embeds=None,
            attention_mask=inputs["attention_mask"], cache=None, mm_token_type_ids=inputs.get("mm_token_type_ids"))
    flat = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
    return flat.expand(3, -1, -1) if inner is not None else flat


def shared_prompt_logits(model, prompt_inputs: dict[str, Any], prompt_index: torch.Tensor,
                         completion_ids: torch.Tensor, attention_mask: torch.Tensor,
                         positions: torch.Tensor) -> torch.Tensor:
    """Logits [N, C, V] at the positions that predict each completion token (position t's are those of the token
    before completion token t). The prompts ``prompt_inputs`` (U left-padded rows of width P, their visual
    tensors) run once; row ``i``'s completion ``completion_ids[i]`` continues prompt ``prompt_index[i]``.
    ``attention_mask`` [N, P+C] and ``positions`` ([3, N, P+C] or [N, P+C], :func:`full_positions`): those of the
    plain forward's rows."""
    width = prompt_inputs["input_ids"].shape[1]
    row_of = {int(u): i for i, u in enumerate(prompt_index.tolist())}  # a row of each prompt (all agree)
    heads = torch.tensor([row_of[u] for u in range(len(row_of))], device=positions.device)
    head = model(**prompt_inputs, use_cache=True, logits_to_keep=1,
                 position_ids=positions[..., heads, :][..., :width])
    cache = output_cache(head)
    rows = prompt_index.to(completion_ids.device)
    select_cache_rows(cache, rows)
    tail = model(input_ids=completion_ids, attention_mask=attention_mask, use_cache=True,
                 position_ids=positions[..., width:], **{cache_argument(model): cache})
    return torch.cat([head.logits.index_select(0, rows), tail.logits[:, :-1]], 1)
