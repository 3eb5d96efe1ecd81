"""Reduce a per-token loss [B, T] (or [B, 1]) and a completion mask [B, T] to the scalar that is back-propagated.

Mode names and formulas match TRL 1.16 ``GRPOTrainer._compute_loss`` exactly (peers.md section 2.5); verl's
names are accepted as aliases. With ``m`` the mask, ``GA`` = ``grad_accum_steps`` (1 outside training):

    grpo      mean_i [ sum_t l_it m_it / max(sum_t m_it, 1) ] / GA      (verl seq-mean-token-mean)
    bnpo      sum_it l m / max(sum_it m, 1) / GA                        (micro-batch token mean)
    dr_grpo   sum_it l m / (B * max_completion_length) / GA             (Liu et al. 2025, arXiv 2503.20783)
    dapo      sum_it l m / N,  N = max(num_items_in_batch, 1) / num_processes * GA / steps_per_generation
              (DAPO token-mean over the whole generation batch; Yu et al. 2025, arXiv 2503.14476; verl token-mean)
    luspo     mean_i sum_t l_it m_it / GA                               (verl seq-mean-token-sum)
    seq-mean-token-sum-norm   sum_it l m / max_completion_length        (verl; no division by B)

Defaults: ``num_items_in_batch`` = this micro-batch's token count, ``steps_per_generation`` = GA,
``max_completion_length`` = T. With those, ``dapo`` equals ``bnpo`` for GA=1. An empty mask gives 0, not NaN.
A row with no tokens counts as 0 in ``grpo``'s mean over rows (as in TRL).
"""
from __future__ import annotations

import torch
from torch import Tensor

AGGREGATION_MODES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "seq-mean-token-sum-norm")
AGGREGATION_ALIASES = {"seq-mean-token-mean": "grpo", "token-mean": "dapo", "seq-mean-token-sum": "luspo", "sapo": "grpo",
            "cispo": "dapo"}


def aggregate_loss(per_token_loss: Tensor, mask: Tensor, mode: str = "dapo", *,
                   num_items_in_batch: Tensor | float | None = None, num_processes: int = 1,
                   grad_accum_steps: int = 1, steps_per_generation: int | None = None,
                   max_completion_length: int | None = None) -> Tensor:
    """The scalar loss for ``mode`` (see the module docstring for each formula). ``mask`` may be bool or float."""
    mode = AGGREGATION_ALIASES.get(mode, mode)
    if mode not in AGGREGATION_MODES:
        raise ValueError(f"unknown loss aggregation mode {mode!r}; valid: {', '.join(AGGREGATION_MODES + tuple(AGGREGATION_ALIASES))}")
    m = mask.to(per_token_loss.dtype)
    masked = per_token_loss * m
    if mode == "grpo":
        return (masked.sum(-1) / m.sum(-1).clamp(min=1.0)).mean() / grad_accum_steps
    if mode == "bnpo":
        return masked.sum() / m.sum().clamp(min=1.0) / grad_accum_steps
    if mode == "dr_grpo":
        length = max_completion_length if max_completion_length is not None else mask.shape[-1]
        return masked.sum() / (masked.shape[0] * length) / grad_accum_steps
    if mode == "dapo":
        items = m.sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch, dtype=m.dtype)
        spg = grad_accum_steps if steps_per_generation is None else steps_per_generation
        normalizer = items.clamp(min=1.0) / num_processes * grad_accum_steps / spg
        return masked.sum() / normalizer
    if mode == "luspo":
        return masked.sum(-1).mean() / grad_accum_steps
    length = max_completion_length if max_completion_length is not None else mask.shape[-1]
    return masked.sum() / length


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """sum(x * m) / max(sum(m), 1): the mean over masked-in entries, 0 for an empty mask."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)
