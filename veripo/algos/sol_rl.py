"""Sol-RL for autoregressive models: explore with a cheap (quantised) engine, train on a contrastive subset.

Sol-RL ("FP4 Explore, BF16 Train"; Li, Chen, Xue et al. 2026, arXiv 2604.06916; spec A11, PAPER only, no code):
a low-precision engine samples a large candidate pool per prompt, the pool is scored, and only the best-K and
worst-K candidates are trained on at full precision. In diffusion the BF16 pass *regenerates* the subset from the
same noise seeds; autoregressive sampling is not seed-deterministic across precisions, so here (spec A11, LLM
transfer, option a) the subset's sequences are kept as sampled, their log-probs are recomputed by teacher forcing
with the full-precision policy, and the mismatch between the two samplers is corrected by a truncated importance
weight. Two pure functions:

    pool_subset_mask(rewards, group_ids, keep_top, keep_bottom)   -> bool [N]  (which candidates are trained)
    truncated_is_weights(full_logps, cheap_logps, mask, cap, level) -> [N, T] or [N, 1]  (multiplies the PPO loss)

Per prompt, with the pool's rewards r_1..r_n (the rewards of the *sampled* sequences: the tokens do not change,
so the subset is not re-scored), the subset is S = top_keep_top(r) ∪ bottom_keep_bottom(r). Advantages are then
computed over S only (any estimator on the kept rows; spec A11 worked example: GRPO over S). Selecting extremes
biases the gradient toward a max-variance subset; that is intended (same spirit as DAPO filtering) and is NOT
what the importance weight corrects.
"""
from __future__ import annotations

import torch
from torch import Tensor

from veripo.algos.groups import Groups

IS_LEVELS = ("token", "sequence")
IS_MODES = ("truncate", "mask")


def descending_ranks(scores: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Per row: its 0-based rank in its group by DEScending score, and its group's number of scored rows.

    Ties break by row index (the earlier row ranks better), so the order is deterministic. NaN scores (unscored
    candidates) rank after every scored row of their group and are not counted.
    """
    groups = Groups.of(group_ids)
    valid = ~torch.isnan(scores)
    key = torch.where(valid, -scores.to(torch.float64), torch.full_like(scores, float("inf"), dtype=torch.float64))
    order, rank_sorted = groups.sorted_order(key)
    rank = torch.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return rank, groups.count_valid(valid).to(torch.long)


def pool_subset_mask(rewards: Tensor, group_ids: Tensor, keep_top: int, keep_bottom: int) -> Tensor:
    """Sol-RL's contrastive subset of a candidate pool, per prompt: the ``keep_top`` best and the ``keep_bottom``
    worst candidates by reward (Li et al. 2026, arXiv 2604.06916; paper: pool 96, K = 12 + 12).

        rank_i = position of row i in its group sorted by reward, descending, ties by row index
        keep_i = rank_i < keep_top  or  rank_i >= n_g - keep_bottom        (n_g = scored rows of the group)

    A pool with n_g <= keep_top + keep_bottom is kept whole (the two sets overlap; nothing is counted twice).
    Unscored (NaN) candidates are never kept. Returns bool [N]; rows are never reordered or deleted.
    Spec A11: rewards [0.1,0.9,0.5,0.3,0.7,0.2,0.8,0.4], K=2 -> rows {1, 6} (top) and {5, 0} (bottom).
    """
    if keep_top < 0 or keep_bottom < 0:
        raise ValueError(f"keep_top and keep_bottom must be >= 0, got {keep_top} and {keep_bottom}")
    rewards = torch.as_tensor(rewards)
    if rewards.dim() != 1 or rewards.shape != group_ids.shape:
        raise ValueError(f"rewards and group_ids must both be [N]; got {tuple(rewards.shape)} and "
                         f"{tuple(group_ids.shape)}")
    rank, n = descending_ranks(rewards.to(torch.float64), group_ids)
    scored = ~torch.isnan(rewards)
    return scored & ((rank < keep_top) | (rank >= n - keep_bottom))


def truncated_is_weights(full_logps: Tensor, cheap_logps: Tensor, mask: Tensor, cap: float = 3.0,
                         level: str = "token", mode: str = "truncate", floor: float | None = None) -> Tensor:
    """Truncated importance weights between the cheap sampler and the full-precision policy (detached).

        token level:     w_it = min(pi_full(y_it) / pi_cheap(y_it), cap) = min(exp(logp_full_it - logp_cheap_it), cap)
        sequence level:  w_i  = min(prod_t pi_full / pi_cheap, cap)
                              = min(exp(sum_t m_it (logp_full_it - logp_cheap_it)), cap)
        mode="mask":     w := 0 where the ratio is above ``cap`` (or below ``floor``), else the ratio itself

    Truncated importance sampling (TIS) for a sampler/learner mismatch: Yao et al. 2025, "Your efficient RL
    framework secretly brings you off-policy RL training"; the same formula as TRL 1.16's
    ``vllm_importance_sampling_correction`` (``token_truncate`` / ``sequence_truncate`` / ``*_mask``, cap 3.0).
    ``full_logps`` are the full-precision policy's teacher-forced log-probs of the sampled tokens (PPO's
    ``old_logps``), ``cheap_logps`` the quantised engine's sampling log-probs; both [N, T], ``mask`` [N, T].
    The weight multiplies the per-token policy loss (before the KL term, as TRL); the PPO ratio stays
    pi_theta / pi_full. Masked positions get weight 1 (token) and do not enter the sequence sum; a NaN
    sampling log-prob counts as no mismatch (as TRL). Returns [N, T] (token) or [N, 1] (sequence).
    """
    if level not in IS_LEVELS:
        raise ValueError(f"level must be one of {IS_LEVELS}, got {level!r}")
    if mode not in IS_MODES:
        raise ValueError(f"mode must be one of {IS_MODES}, got {mode!r}")
    if cap <= 0:
        raise ValueError(f"cap must be > 0 (e.g. 3.0), got {cap}")
    if full_logps.shape != cheap_logps.shape or full_logps.shape != mask.shape:
        raise ValueError(f"full_logps, cheap_logps and mask must share a shape; got {tuple(full_logps.shape)}, "
                         f"{tuple(cheap_logps.shape)}, {tuple(mask.shape)}")
    m = mask.to(full_logps.dtype)
    diff = torch.nan_to_num((full_logps.detach() - cheap_logps.detach()) * m, nan=0.0)
    if level == "sequence":
        diff = diff.sum(-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode == "truncate":
        return ratio.clamp(min=floor, max=cap) if floor is not None else ratio.clamp(max=cap)
    low = float("-inf") if floor is None else floor
    return ratio.masked_fill((ratio > cap) | (ratio < low), 0.0)
