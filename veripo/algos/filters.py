"""Reusable rollout filters and reward shaping (the GFCR "Filter" step). Pure tensor functions; filters return
a keep mask, they never delete rows.
"""
from __future__ import annotations

import torch
from torch import Tensor

from veripo.algos.groups import Groups
from veripo.algos.sol_rl import descending_ranks


def overlong_penalty(lengths: Tensor, max_length: int = 20480, cache_length: int = 4096,
                     penalty_factor: float = 1.0) -> Tensor:
    """DAPO soft overlong punishment, added to the reward (Yu et al. 2025, arXiv 2503.14476; verl ``dapo`` reward
    manager):

        exceed = |y| - (max_length - cache_length);  penalty = min(-exceed / cache_length * penalty_factor, 0)
    0 up to max_length - cache_length, then linear down to -penalty_factor at max_length. Lengths beyond
    max_length keep falling linearly (verl); the paper's clip to -1 is ``.clamp(min=-penalty_factor)``.
    Spec A1 (20480/4096): 10000 -> 0, 16384 -> 0, 17408 -> -0.25, 18432 -> -0.5, 20480 -> -1.
    """
    if not 0 < cache_length <= max_length:
        raise ValueError(f"need 0 < cache_length <= max_length, got {cache_length} and {max_length}")
    exceed = lengths.to(torch.float64) - (max_length - cache_length)
    return torch.clamp(-exceed / cache_length * penalty_factor, max=0.0).to(torch.get_default_dtype())


def dynamic_sampling_mask(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """DAPO dynamic sampling: keep a group iff its rewards are not all equal (std > 0 exactly), or it has a single
    rollout (verl ``np.std(vals) > 0 or len(vals) == 1``). Returns keep [N] (whole groups kept or dropped).

    ``rewards``: the filter metric per rollout (accuracy or sequence reward), [N]. NaN rewards are ignored in
    the spread; a group whose scored rewards are all equal is dropped.
    """
    groups = Groups.of(group_ids)
    r = rewards.to(torch.float64)
    spread = groups.std(r, unbiased=False) > 0
    single = groups.sizes[groups.inverse] == 1
    return spread | single


def valid_binary_group_mask(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """DRPO validity: keep rows whose group has at least one reward == 1 and one reward == 0 (exact)."""
    groups = Groups.of(group_ids)
    has_pos = groups.sum_per_group((rewards == 1).to(torch.float64)) > 0
    has_neg = groups.sum_per_group((rewards == 0).to(torch.float64)) > 0
    return (has_pos & has_neg)[groups.inverse]


def select_extremes(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Sol-RL selection on ONE pool: indices of the top-k and bottom-k scores (Li et al. 2026, arXiv 2604.06916).
    Ties break by position (``veripo.algos.sol_rl.descending_ranks``; per-prompt pools: ``pool_subset_mask``).
    If the pool has fewer than 2k items the bottom set drops indices already in the top set (no duplicates).
    Returns (top [k], bottom [<=k]), each in descending score order.
    Spec A11: scores [0.1,0.9,0.5,0.3,0.7,0.2,0.8,0.4], k=2 -> top [1, 6], bottom [5, 0].
    """
    rank, _ = descending_ranks(scores, torch.zeros(len(scores), dtype=torch.long, device=scores.device))
    order = torch.argsort(rank)
    top = order[:k]
    rest = order[k:]
    bottom = rest[len(rest) - min(k, len(rest)):] if k > 0 else rest[:0]
    return top, bottom
