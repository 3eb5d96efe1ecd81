"""Weightings around any preference loss: TRL 1.16's ``DPOConfig.ld_alpha`` and ``use_weighting``, as pure tensor
functions over the per-token log-probs the losses already take (``[B, T]``, right-padded, ``mask`` 1 on real tokens).

* **LD-DPO** (Liu et al. 2024, "LD-DPO: Length Desensitization in Direct Preference Optimization", arXiv
  2409.06411): the sequence log-prob counts the tokens beyond the shorter response of the pair at a discount,

      logp(y) = sum_{t <= L_s} logp_t + alpha * sum_{t > L_s} logp_t,      L_s = min(|y_w|, |y_l|),

  for the policy and the reference alike (TRL: ``ld_alpha``). Written as per-token weights ``w_t`` in ``{1, alpha}``
  that multiply the per-token log-probs, so every loss that sums them sees exactly this value.
* **WPO** (Zhou et al. 2024, "WPO: Enhancing RLHF with Weighted Preference Optimization", arXiv 2406.11827, Eq 2):
  off-policy pairs are down-weighted by how likely the current policy is to produce them,

      w(y) = exp( (1/|y|) sum_t [ log pi(y_t | ...) - log sum_v pi(v | ...)^2 ] )      (no gradient)
      loss_pair <- loss_pair * w(y_w) * w(y_l)

  (TRL 1.x: ``use_weighting``, no clamp; TRL <= 0.28 clamped ``exp(w_w + w_l)`` at 1.) Undefined for the losses that
  sort the batch (``aot``, ``aot_unpaired``), as in TRL.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

BATCH_SORTING_LOSSES = ("aot", "aot_unpaired")


def length_desensitized_weights(chosen_mask: Tensor, rejected_mask: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """Per-token weights ``(w_chosen, w_rejected)`` [B, T]: 1 on a response's first ``min(|y_w|, |y_l|)`` tokens,
    ``alpha`` on the rest, 0 on padding."""
    check_weighting([], False, alpha)
    cm, rm = chosen_mask.float(), rejected_mask.float()
    shared = torch.minimum(cm.sum(-1), rm.sum(-1)).unsqueeze(-1)

    def weights(mask: Tensor) -> Tensor:
        position = mask.cumsum(-1)  # 1-based position among the real tokens
        return torch.where(position <= shared, torch.ones_like(mask), torch.full_like(mask, alpha)) * mask

    return weights(cm), weights(rm)


def wpo_weights(logps: Tensor, log_sum_sq: Tensor, mask: Tensor) -> Tensor:
    """WPO's per-response weight [B] (see the module doc); ``log_sum_sq[b, t] = log sum_v pi(v)^2`` at each position."""
    m = mask.to(logps.dtype)
    aligned = ((logps.detach() - log_sum_sq.detach()) * m).sum(-1) / m.sum(-1).clamp(min=1)
    return torch.exp(aligned)


def check_weighting(loss_names: list[str], use_weighting: bool, ld_alpha: float | None = None) -> None:
    """Clear errors for settings that are undefined: WPO with a batch-sorting loss, ``ld_alpha`` outside [0, 1]."""
    if ld_alpha is not None and not 0.0 <= ld_alpha <= 1.0:
        raise ValueError(f"ld_alpha must be in [0, 1], got {ld_alpha}")
    bad = [n for n in loss_names if n in BATCH_SORTING_LOSSES]
    if use_weighting and bad:
        raise ValueError(f"loss.use_weighting (WPO) is undefined for {', '.join(bad)}: those losses sort the batch, "
                         "so per-pair weights would be misaligned")


def weighted_preference_losses(loss_fn: Callable[..., Tensor], chosen_logps: Tensor, rejected_logps: Tensor,
                               chosen_mask: Tensor, rejected_mask: Tensor, ref_chosen_logps: Tensor | None = None,
                               ref_rejected_logps: Tensor | None = None, ld_alpha: float | None = None,
                               log_sum_sq: Tensor | None = None, **hparams: object) -> Tensor:
    """``loss_fn``'s per-pair losses [B] with LD-DPO's token weights on the policy and reference log-probs
    (``ld_alpha``) and, given ``log_sum_sq`` ([2B, T]: chosen rows then rejected rows), WPO's pair weights
    computed from the plain (unweighted) log-probs, as TRL 1.16 does."""
    inputs = [chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps]
    if ld_alpha is not None:
        w_c, w_r = length_desensitized_weights(chosen_mask, rejected_mask, ld_alpha)
        inputs = [None if x is None else x * w for x, w in zip(inputs, (w_c, w_r, w_c, w_r))]
    losses = loss_fn(inputs[0], inputs[1], chosen_mask, rejected_mask, inputs[2], inputs[3], **hparams)
    if log_sum_sq is not None:
        b = chosen_mask.shape[0]
        losses = (losses * wpo_weights(chosen_logps, log_sum_sq[:b], chosen_mask)
                  * wpo_weights(rejected_logps, log_sum_sq[b:], rejected_mask))
    return losses
