"""Pure functions the rollout controllers are built on (the GFCR "Control" step's arithmetic): Student's t
quantiles (XRPO), per-bin mean losses and the square-root-law integer allocation (GDRO), and the Mann-Whitney AUC
(ARRoL's head calibration). The stateful controllers that use them live beside their wrappers in
:mod:`veripo.rollout.control_state` and :mod:`veripo.rollout.prune_state`.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
from torch import Tensor


# ----------------------------------------------------------------------------------------------- Student t

def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student t with integer df (Abramowitz & Stegun 26.7.3-4, finite series)."""
    theta = math.atan(t / math.sqrt(df))
    c, s = math.cos(theta), math.sin(theta)
    if df % 2 == 1:
        total, term = 0.0, c
        for k in range(1, (df - 1) // 2 + 1):
            if k > 1:
                term *= c * c * (2 * k - 2) / (2 * k - 1)
            total += term
        return (2 / math.pi) * (theta + s * total) if df > 1 else 2 * theta / math.pi
    total, term = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= c * c * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def student_t_quantile(p: float, df: int) -> float:
    """The p-quantile (p >= 0.5) of Student's t with integer df >= 1, by bisection on the exact CDF."""
    if df < 1 or not 0.5 <= p < 1:
        raise ValueError(f"need df >= 1 and 0.5 <= p < 1, got df={df}, p={p}")
    target = 2 * p - 1
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, df) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_two_sided_mass(mid, df) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def bin_mean_losses(per_prompt_loss: Tensor, bin_ids: Tensor, num_bins: int) -> tuple[Tensor, Tensor]:
    """(mean loss per bin [B], present [B] bool): the batch mean prompt loss of each bin (GDRO Eq 13)."""
    loss = per_prompt_loss.detach().to(torch.float64)
    bin_ids = bin_ids.cpu()
    total = torch.zeros(num_bins, dtype=torch.float64).index_add(0, bin_ids, loss.cpu())
    count = torch.bincount(bin_ids, minlength=num_bins).to(torch.float64)
    return total / count.clamp(min=1), count > 0


def sqrt_law_allocation(variances: Tensor, shares: Tensor, mean_budget: float) -> Tensor:
    """GDRO Thm 4.2 / Eq 30: n_b = n_bar sqrt(v_b) / sum_j q_j sqrt(v_j), so that sum_b q_b n_b = n_bar.
    All-zero variances -> n_bar everywhere."""
    root = torch.as_tensor(variances, dtype=torch.float64).clamp(min=0).sqrt()
    q = torch.as_tensor(shares, dtype=torch.float64)
    denom = (q * root).sum()
    if denom <= 0:
        return torch.full_like(root, float(mean_budget))
    return mean_budget * root / denom


def integer_allocation(weights: Tensor, total: int, low: int, high: int) -> Tensor:
    """Integers n_i in [low, high] with sum exactly ``total``, closest to proportional to ``weights``:
    find the scale s with sum clip(s w_i, low, high) = total (bisection), then round by largest remainder."""
    w = torch.as_tensor(weights, dtype=torch.float64).clamp(min=0)
    n = len(w)
    if not n * low <= total <= n * high:
        raise ValueError(f"cannot give {n} prompts between {low} and {high} rollouts each with a budget of {total}")
    if w.sum() <= 0:
        w = torch.ones_like(w)
    lo, hi = 0.0, 1.0
    while torch.clamp(hi * w, low, high).sum() < total:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if torch.clamp(mid * w, low, high).sum() < total:
            lo = mid
        else:
            hi = mid
    target = torch.clamp(hi * w, low, high)
    base = torch.floor(target).long().clamp(low, high)
    short = total - int(base.sum())
    order = torch.sort(-(target - base), stable=True).indices
    step = 1 if short > 0 else -1
    for i in itertools.cycle(order.tolist() if step > 0 else order.flip(0).tolist()):
        if short == 0:
            break
        if low <= int(base[i]) + step <= high:
            base[i] += step
            short -= step
    return base


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Mann-Whitney AUC (ties count 1/2); None without both classes."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))
