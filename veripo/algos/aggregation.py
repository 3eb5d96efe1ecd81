"""Reduce a per-token loss [B, T] (or [B, 1]) and a completion mask [B, T] to the scalar that is back-propagated.

Mode names and formulas match TRL 1.16 ``GRPOTrainer._compute_loss`` exactly (peers.md section 2.5); verl's
names are accepted as aliases. With ``m`` the mask, ``GA`` = ``grad_accum_steps`` (1 outside training), and
``R`` the rows that count (see "Masked rows" below; ``B`` rows when nothing is masked):

    grpo      sum_{i in R} [ sum_t l_it m_it / max(sum_t m_it, 1) ] / |R| / GA   (verl seq-mean-token-mean)
    bnpo      sum_it l m / max(sum_it m, 1) / GA                        (micro-batch token mean)
    dr_grpo   sum_it l m / (|R| * max_completion_length) / GA           (Liu et al. 2025, arXiv 2503.20783)
    dapo      sum_it l m / N,  N = max(num_items_in_batch, 1) / num_processes * GA / steps_per_generation
              (DAPO token-mean over the whole generation batch; Yu et al. 2025, arXiv 2503.14476; verl token-mean)
    luspo     sum_{i in R} sum_t l_it m_it / |R| / GA                   (verl seq-mean-token-sum)
    seq-mean-token-sum-norm   sum_it l m / max_completion_length        (verl; no division by B)

Defaults: ``num_items_in_batch`` = this micro-batch's token count, ``steps_per_generation`` = GA,
``max_completion_length`` = T. With those, ``dapo`` equals ``bnpo`` for GA=1. An empty mask gives 0, not NaN.
A kept row with no tokens counts as 0 in ``grpo``'s mean over rows (as in TRL).

Masked rows. ``keep_mask`` (bool [B]) marks the rows an estimator or filter dropped: MC-GRPO's pivot (median)
rollout, GD²PO's conflicting rollouts, DAPO dynamic sampling's zero-spread groups, unscored (NaN) rollouts. A
dropped row adds nothing to the numerator AND is not a row of any denominator: the loss equals the loss of the
batch with those rows deleted, which is what the methods' own code does --

* MC-GRPO (lotusroot-kim/MC-GRPO ``src/open_r1/grpo_trainer_math.py``): ``advantages[non_median_mask]`` and the
  completion tensors are sliced before ``_compute_loss``, so ``grpo``'s ``.mean()`` and ``dr_grpo``'s
  ``per_token_loss.size(0)`` count G rows per prompt, not G+1;
* DAPO dynamic sampling (verl recipe ``dapo``): groups whose rewards all agree are removed from the batch and
  more are generated until it is full, so they never reach a denominator. (TRL 1.16 has no dynamic sampling:
  its zero-spread groups stay in the batch with A=0 and do count; with ``algo.dynamic_sampling`` off, veripo's
  zero-spread groups are likewise kept rows with A=0.)
* GD²PO (Qwen-Applications/GD2PO, verl path): filtered rows leave the response mask, so under verl's token-mean
  they count in no denominator; veripo extends that to the row modes (``grpo``, ``dr_grpo``, ``luspo``).

Tokens a row does not train (TRL ``mask_truncated_completions``, tree segments trained elsewhere) are a matter of
``mask``, not ``keep_mask``: such a row still counts in ``grpo``/``dr_grpo``/``luspo`` (as in TRL).

Under gradient accumulation ``|R|`` is this micro-batch's kept rows, as TRL's per-micro-batch ``.mean()``. Pass
``num_rows_in_batch`` (kept rows of the whole generation batch, summed over ranks) to normalise the row modes
like ``dapo``: ``|R| * GA := num_rows_in_batch / num_processes * GA / steps_per_generation`` (no further / GA),
so micro-batches with different numbers of dropped rows are weighted exactly as the deleted-rows batch would be.
"""
from __future__ import annotations

import torch
from torch import Tensor

AGGREGATION_MODES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "seq-mean-token-sum-norm")
AGGREGATION_ALIASES = {"seq-mean-token-mean": "grpo", "token-mean": "dapo", "seq-mean-token-sum": "luspo", "sapo": "grpo",
            "cispo": "dapo"}


def aggregate_loss(per_token_loss: Tensor, mask: Tensor, mode: str = "dapo", *,
                   keep_mask: Tensor | None = None, num_items_in_batch: Tensor | float | None = None,
                   num_rows_in_batch: Tensor | float | None = None, num_processes: int = 1,
                   grad_accum_steps: int = 1, steps_per_generation: int | None = None,
                   max_completion_length: int | None = None) -> Tensor:
    """The scalar loss for ``mode`` (see the module docstring for each formula). ``mask`` may be bool or float;
    rows with ``keep_mask`` False count nowhere (numerator or denominator)."""
    mode = AGGREGATION_ALIASES.get(mode, mode)
    if mode not in AGGREGATION_MODES:
        raise ValueError(f"unknown loss aggregation mode {mode!r}; valid: {', '.join(AGGREGATION_MODES + tuple(AGGREGATION_ALIASES))}")
    m = mask.to(per_token_loss.dtype)
    if keep_mask is not None:
        if keep_mask.shape != (m.shape[0],):
            raise ValueError(f"keep_mask must be [B]={m.shape[0]} rows, got shape {tuple(keep_mask.shape)}")
        m = m * keep_mask.to(m.dtype).unsqueeze(-1)
    rows_kept = (torch.as_tensor(float(m.shape[0]), dtype=m.dtype, device=m.device) if keep_mask is None
                 else keep_mask.to(m.dtype).sum())
    spg = grad_accum_steps if steps_per_generation is None else steps_per_generation
    if num_rows_in_batch is None:
        rows = rows_kept.clamp(min=1.0) * grad_accum_steps  # TRL: per-micro-batch mean, then / GA
    else:
        rows = torch.as_tensor(num_rows_in_batch, dtype=m.dtype, device=m.device).clamp(min=1.0) / num_processes \
            * grad_accum_steps / spg  # like dapo's normaliser: no further / GA
    masked = per_token_loss * m
    if mode == "grpo":
        return (masked.sum(-1) / m.sum(-1).clamp(min=1.0)).sum() / rows
    if mode == "bnpo":
        return masked.sum() / m.sum().clamp(min=1.0) / grad_accum_steps
    if mode == "dr_grpo":
        length = max_completion_length if max_completion_length is not None else mask.shape[-1]
        return masked.sum() / (rows * length)
    if mode == "dapo":
        items = m.sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch, dtype=m.dtype)
        normalizer = items.clamp(min=1.0) / num_processes * grad_accum_steps / spg
        return masked.sum() / normalizer
    if mode == "luspo":
        return masked.sum(-1).sum() / rows
    length = max_completion_length if max_completion_length is not None else mask.shape[-1]
    return masked.sum() / length


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """sum(x * m) / max(sum(m), 1): the mean over masked-in entries, 0 for an empty mask."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)
