"""Group-relative advantage estimators for the GRPO stage (spec: shared/spec/algorithms.md, part A).

Every estimator has the signature ``fn(rewards, group_ids, **kw) -> AdvantageResult``:

* ``rewards``: float [N] (one scalar per rollout) or [N, K] (K reward components; estimators that need a
  scalar combine them as ``sum_k w_k r_k`` with ``reward_weights`` (default all 1), NaN-ignoring, like TRL's
  ``sum_then_normalize``). A NaN reward (could not be scored) is left out of its group's statistics and gets
  advantage 0 and ``keep_mask`` False.
* ``group_ids``: long [N], the prompt each rollout belongs to (any id values; rows need not be sorted).
* returns ``AdvantageResult(advantages [N] (or [M, T] token-level, see ``branch``), keep_mask bool [N],
  metrics dict[str, float])``. Filters never delete rows: they clear ``keep_mask`` (static batch shapes).

Estimators run under ``torch.no_grad()``: advantages are constants of the policy gradient. Their ``**_`` swallows
what the trainer passes to every estimator; ``algo.advantage_kwargs`` is checked against each one's keyword
options at start-up (``veripo.options``; ``@forwards_kwargs(grpo)`` marks an estimator whose ``**kw`` reach grpo).
Results are never NaN: singleton groups, zero-spread groups and all-NaN groups give advantage 0 unless an
estimator documents otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from veripo.algos.groups import Groups
from veripo.algos.registry import Registry
from veripo.options import forwards_kwargs

ADVANTAGE_ESTIMATORS = Registry("advantage estimator")


@dataclass
class AdvantageResult:
    """Output of an advantage estimator: ``advantages``, ``keep_mask`` (False = drop from the loss), ``metrics``;
    value-based estimators (``ppo_gae``, ``pdppo``) add ``returns``, the value heads' targets."""

    advantages: Tensor
    keep_mask: Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    returns: Tensor | None = None


def register_advantage_estimator(name: str, aliases: tuple[str, ...] = ()) -> Callable:
    """Decorator: register ``fn(rewards, group_ids, **kw) -> AdvantageResult`` under ``name``; duplicates raise.

    The function is wrapped in ``torch.no_grad()``.
    """
    def wrap(fn: Callable) -> Callable:
        no_grad_fn = torch.no_grad()(fn)
        ADVANTAGE_ESTIMATORS.register(name, aliases)(no_grad_fn)
        return no_grad_fn

    return wrap


def get_advantage_estimator(name: str) -> Callable[..., AdvantageResult]:
    """The estimator registered under ``name``; an unknown name raises and lists the valid ones."""
    return ADVANTAGE_ESTIMATORS.get(name)


def list_advantage_estimators() -> list[str]:
    return ADVANTAGE_ESTIMATORS.names()


# ----------------------------------------------------------------------------------------------- helpers

def scalar_rewards(rewards: Tensor, reward_weights: Tensor | list[float] | None = None) -> Tensor:
    """[N] -> as is (float); [N, K] -> NaN-ignoring weighted sum (a row that is all NaN stays NaN)."""
    rewards = torch.as_tensor(rewards)
    if not rewards.is_floating_point():
        rewards = rewards.float()
    if rewards.dim() == 1:
        return rewards
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [N] or [N, K], got shape {tuple(rewards.shape)}")
    w = _weights(reward_weights, rewards.shape[1], rewards)
    all_nan = torch.isnan(rewards).all(dim=1)
    total = torch.nansum(rewards * w, dim=1)
    return torch.where(all_nan, torch.full_like(total, float("nan")), total)


def _weights(reward_weights, k: int, like: Tensor) -> Tensor:
    if reward_weights is None:
        return torch.ones(k, dtype=like.dtype, device=like.device)
    w = torch.as_tensor(reward_weights, dtype=like.dtype, device=like.device)
    if w.shape != (k,):
        raise ValueError(f"reward_weights has {w.numel()} entries but rewards have {k} components")
    return w


def _components(rewards: Tensor) -> Tensor:
    rewards = torch.as_tensor(rewards)
    if not rewards.is_floating_point():
        rewards = rewards.float()
    return rewards.unsqueeze(1) if rewards.dim() == 1 else rewards


def _finish(adv: Tensor, valid: Tensor, keep: Tensor | None = None, **metrics: float) -> AdvantageResult:
    adv = torch.nan_to_num(torch.where(valid, adv, torch.zeros_like(adv)), nan=0.0, posinf=0.0, neginf=0.0)
    keep = valid if keep is None else (keep & valid)
    base = {"adv_abs_mean": float(adv.abs().mean()) if adv.numel() else 0.0,
            "keep_frac": float(keep.float().mean()) if keep.numel() else 0.0}
    base.update({k: float(v) for k, v in metrics.items()})
    return AdvantageResult(adv, keep, base)


def group_normalize(r: Tensor, groups: Groups, eps: float, std_normalize: bool = True, unbiased: bool = True,
                    scale: str = "group", singleton: str = "zero") -> Tensor:
    """A = (r - mean_g) / (std + eps), the shared GRPO core (NaN rows come back NaN).

    ``scale``: "group" (std of the group), "batch" (std of all valid rewards, TRL ``scale_rewards="batch"``) or
    "none". ``singleton``: "zero" (TRL: the std of one sample is undefined, nan_to_num gives A=0) or "raw"
    (verl: mean:=0, std:=1, so A = r).
    """
    mean = groups.mean(r)
    count = groups.count_valid(~torch.isnan(r)).to(r.dtype)
    if not std_normalize or scale == "none":
        adv = r - mean
    elif scale == "group":
        adv = (r - mean) / (groups.std(r, unbiased) + eps)
    elif scale == "batch":
        valid = r[~torch.isnan(r)]
        std = valid.std(unbiased=unbiased) if valid.numel() > 1 else torch.zeros((), dtype=r.dtype, device=r.device)
        adv = (r - mean) / (torch.nan_to_num(std, nan=0.0) + eps)
    else:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    if singleton == "raw":
        return torch.where(count == 1, r, adv)
    if singleton != "zero":
        raise ValueError(f"singleton must be 'zero' or 'raw', got {singleton!r}")
    return torch.where(count <= 1, torch.zeros_like(adv), adv)


def _group_metrics(r: Tensor, groups: Groups) -> dict[str, float]:
    valid = ~torch.isnan(r)
    std = groups.std(r)
    per_group_std = torch.zeros(groups.num_groups, dtype=r.dtype, device=r.device).scatter_reduce(
        0, groups.inverse, std, "amax", include_self=False)
    return {
        "reward_mean": float(r[valid].mean()) if valid.any() else 0.0,
        "zero_std_group_frac": float((per_group_std == 0).float().mean()) if groups.num_groups else 0.0,
    }


# ----------------------------------------------------------------------------------------------- GRPO family

@register_advantage_estimator("grpo")
def grpo(rewards: Tensor, group_ids: Tensor, eps: float = 1e-4, std_normalize: bool = True,
         unbiased: bool = True, scale: str = "group", singleton: str = "zero",
         reward_weights=None, **_: object) -> AdvantageResult:
    """GRPO: A_i = (r_i - mean_g r) / (std_g r + eps).  Shao et al. 2024, DeepSeekMath (arXiv 2402.03300).

    Defaults follow TRL 1.16 (unbiased std, eps=1e-4, K rewards summed with ``reward_weights`` before the
    normalisation). verl uses eps=1e-6 and ``singleton="raw"``. ``std_normalize=False`` is Dr.GRPO.
    Edge cases: zero-spread group -> A=0; single-rollout group -> A=0 (``singleton="zero"``) or A=r ("raw").
    """
    r = scalar_rewards(rewards, reward_weights)
    groups = Groups.of(group_ids)
    adv = group_normalize(r, groups, eps, std_normalize, unbiased, scale, singleton)
    return _finish(adv, ~torch.isnan(r), **_group_metrics(r, groups))


@register_advantage_estimator("dr_grpo")
def dr_grpo(rewards: Tensor, group_ids: Tensor, reward_weights=None, **_: object) -> AdvantageResult:
    """Dr.GRPO: A_i = r_i - mean_g r (no std scaling).  Liu et al. 2025, "Understanding R1-Zero-Like Training"
    (arXiv 2503.20783). Pair it with ``aggregate_loss(mode="dr_grpo")``. Singleton group -> A=0."""
    r = scalar_rewards(rewards, reward_weights)
    groups = Groups.of(group_ids)
    adv = group_normalize(r, groups, eps=0.0, std_normalize=False)
    return _finish(adv, ~torch.isnan(r), **_group_metrics(r, groups))


@register_advantage_estimator("rloo")
def rloo(rewards: Tensor, group_ids: Tensor, reward_weights=None, **_: object) -> AdvantageResult:
    """RLOO: A_i = r_i - (1/(G-1)) sum_{j != i} r_j = G/(G-1) (r_i - mean_g r).
    Ahmadian et al. 2024, "Back to Basics" (arXiv 2402.14740). Singleton group -> A=0 (no leave-one-out)."""
    r = scalar_rewards(rewards, reward_weights)
    groups = Groups.of(group_ids)
    valid = ~torch.isnan(r)
    n = groups.count_valid(valid).to(r.dtype)
    total = groups.sum_per_group(torch.where(valid, r, torch.zeros_like(r)))[groups.inverse]
    adv = torch.where(n > 1, r - (total - r) / (n - 1).clamp(min=1), torch.zeros_like(r))
    return _finish(adv, valid, **_group_metrics(r, groups))


@register_advantage_estimator("mc_grpo")
def mc_grpo(rewards: Tensor, group_ids: Tensor, mad_eps: float = 1e-3, scale: str = "mad",
            rescale_nonzero: bool = False, exclude_pivot: bool = True, reward_weights=None,
            **_: object) -> AdvantageResult:
    """MC-GRPO: median-centred advantages, the median ("pivot") rollout excluded from the loss.
    Kim et al. 2026 (arXiv 2601.22582), code lotusroot-kim/MC-GRPO. Sample G+1 rollouts per prompt.

        m = lower median of the group (torch.median semantics), MAD = median |r - m| + mad_eps
        A_i = (r_i - m) / MAD                     (scale="mad", code-faithful default)
        scale="safe": divide by MAD if MAD>0, else std if std>0, else 1;  scale="none": A_i = r_i - m
        rescale_nonzero (gsm trainer): A_i *= n / #{j: |A_j| > 1e-6} for the non-zero A_i
        keep_mask[pivot] = False, pivot = argsort(r, stable)[(n-1)//2] (first tied row: deterministic)

    Warning (spec A2): binary rewards give MAD = 0, so the minority gets +-1/mad_eps = +-1000.
    All-equal group: A=0, pivot still dropped. Single-rollout group: A=0 and the row is its own pivot.
    """
    r = scalar_rewards(rewards, reward_weights)
    valid = ~torch.isnan(r)
    if not valid.all():
        raise ValueError("mc_grpo needs every reward scored (NaN found); drop or score those rollouts first")
    groups = Groups.of(group_ids)
    med, pivots = groups.lower_median(r)
    mad, _ = groups.lower_median((r - med).abs())
    if scale == "mad":
        denom = mad + mad_eps
    elif scale == "safe":
        std = groups.std(r)
        denom = torch.where(mad > 0, mad, torch.where(std > 0, std, torch.ones_like(std)))
    elif scale == "none":
        denom = torch.ones_like(r)
    else:
        raise ValueError(f"scale must be 'mad', 'safe' or 'none', got {scale!r}")
    adv = (r - med) / denom
    if rescale_nonzero:
        nonzero = adv.abs() > 1e-6
        n_nonzero = groups.sum_per_group(nonzero.to(r.dtype))[groups.inverse]
        factor = groups.sizes[groups.inverse].to(r.dtype) / n_nonzero.clamp(min=1)
        adv = torch.where(nonzero, adv * factor, adv)
    keep = torch.ones_like(valid)
    if exclude_pivot:
        keep[pivots] = False
    return _finish(adv, valid, keep, **_group_metrics(r, groups))


@register_advantage_estimator("gdpo")
@forwards_kwargs(grpo)
def gdpo(rewards: Tensor, group_ids: Tensor, reward_weights=None, eps: float = 1e-4,
         batch_normalize: bool = True, **kw: object) -> AdvantageResult:
    """GDPO: normalise each reward within its group, weighted-sum, then normalise over the batch.
    NVIDIA 2026 (arXiv 2601.05242), code NVlabs/GDPO (TRL path).

        A^k_i = (r^k_i - mean_g r^k) / (std_g r^k + eps)       (nan -> 0)
        pre_i = sum_k w_k A^k_i ;  A_i = (pre_i - mean_batch pre) / (std_batch pre + eps)   (unbiased std)

    With one reward component (K=1) this is plain ``grpo``. A reward constant within a group adds 0;
    a constant batch gives A=0. Singleton groups contribute A^k=0.
    """
    comps = _components(rewards)
    if comps.shape[1] == 1:
        return grpo(comps[:, 0], group_ids, eps=eps, **kw)
    groups = Groups.of(group_ids)
    w = _weights(reward_weights, comps.shape[1], comps)
    per_reward = torch.stack([torch.nan_to_num(group_normalize(comps[:, k], groups, eps), nan=0.0)
                              for k in range(comps.shape[1])], dim=1)
    pre = (per_reward * w).sum(dim=1)
    valid = ~torch.isnan(comps).all(dim=1)
    if batch_normalize and int(valid.sum()) > 1:
        v = pre[valid]
        pre = (pre - v.mean()) / (v.std() + eps)
    return _finish(pre, valid, **_group_metrics(scalar_rewards(comps, w), groups))


def masked_whiten(values: Tensor, weights: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean_w) / sqrt(var_w + eps) with token counts as weights and Bessel's correction on the total count
    (verl ``masked_whiten``). Fewer than 2 weighted tokens -> zeros (verl would raise)."""
    n = weights.sum()
    if n < 2:
        return torch.zeros_like(values)
    mean = (values * weights).sum() / n
    var = (((values - mean) ** 2) * weights).sum() / n * (n / (n - 1))
    return (values - mean) / torch.sqrt(var + eps)


@register_advantage_estimator("gd2po")
def gd2po(rewards: Tensor, group_ids: Tensor, conflict_filter: str = "hard", tau: float = 0.8,
          ratio_eps: float = 1e-8, sign_eps: float = 1e-8, eps: float = 1e-6, whiten: bool = True,
          response_mask: Tensor | None = None, **_: object) -> AdvantageResult:
    """GD2PO: GDPO plus a conflict filter and per-query consensus weights. arXiv 2606.16771, code
    Qwen-Applications/GD2PO ``compute_advantage`` (verl path).

        A^k_i = verl GRPO advantage of reward k (unbiased std, eps=1e-6, singleton: A=r)
        a^k_i = A^k_i * len_i ;  conflict_i = any_k a^k_i > sign_eps  and  any_k a^k_i < -sign_eps
        conflict_filter="hard": keep_i = not conflict_i
        conflict_filter="snr" : s_i = sum_k a^k_i / (sum_k |a^k_i| + ratio_eps); keep_i = not(conflict_i and |s_i| < tau)
        conflict_filter="none": keep everything (plain GDPO with masked whitening)
        rho_g = kept fraction of group g ;  A~_i = rho_g * keep_i * sum_k A^k_i
        A_i = masked_whiten(A~, keep * len) * keep     (token-weighted if ``response_mask`` [N, T] is given)

    Defaults: tau=0.8 (the paper's scripts; config default 0.2). Edge cases: fully conflicting group -> rho=0;
    fewer than 2 kept tokens -> all zeros (verl raises). Filtered rows keep advantage 0 and keep_mask False;
    multiply the loss mask by keep_mask so they do not count in a token-mean denominator.
    """
    comps = _components(rewards)
    if torch.isnan(comps).any():
        raise ValueError("gd2po needs every reward component scored (NaN found)")
    groups = Groups.of(group_ids)
    per_reward = torch.stack([group_normalize(comps[:, k], groups, eps, singleton="raw")
                              for k in range(comps.shape[1])], dim=1)
    lengths = (response_mask.to(comps.dtype).sum(dim=1) if response_mask is not None
               else torch.ones(len(comps), dtype=comps.dtype, device=comps.device))
    agg = per_reward * lengths.unsqueeze(1)
    conflict = (agg > sign_eps).any(dim=1) & (agg < -sign_eps).any(dim=1)
    if conflict_filter == "hard":
        keep = ~conflict
    elif conflict_filter == "snr":
        ratio = agg.sum(dim=1) / (agg.abs().sum(dim=1) + ratio_eps)
        keep = ~(conflict & (ratio.abs() < min(max(tau, 0.0), 1.0)))
    elif conflict_filter == "none":
        keep = torch.ones_like(conflict)
    else:
        raise ValueError(f"conflict_filter must be 'hard', 'snr' or 'none', got {conflict_filter!r}")
    keep_f = keep.to(comps.dtype)
    rho = groups.sum_per_group(keep_f)[groups.inverse] / groups.sizes[groups.inverse].to(comps.dtype)
    adv = rho * keep_f * per_reward.sum(dim=1)
    if whiten:
        adv = masked_whiten(adv, keep_f * lengths) * keep_f
    return _finish(adv, torch.ones_like(keep), keep, conflict_frac=float(conflict.float().mean()),
                   **_group_metrics(comps.sum(dim=1), groups))


@register_advantage_estimator("xrpo")
@forwards_kwargs(grpo)
def xrpo(rewards: Tensor, group_ids: Tensor, seq_logps: Tensor | None = None, logps: Tensor | None = None,
         response_mask: Tensor | None = None, correct: Tensor | None = None, novelty_lambda: float = 2.5,
         novelty_kappa: float = 0.5, eps: float = 1e-4, **kw: object) -> AdvantageResult:
    """XRPO novelty sharpening on top of GRPO. Bamba et al. 2025 (arXiv 2510.06672).

        s_i   = mean_t log pi(y_it)  (``seq_logps`` [N], or ``logps`` [N, T] with ``response_mask``)
        eta_i = exp(s_i - mean_g s)
        A+_i  = A_i + min(max(novelty_lambda * (1 - eta_i), 0), novelty_kappa * A_i)   for correct i with A_i > 0
        A+_i  = A_i                                                                  otherwise
    A_i is ``grpo`` (eps as given). ``correct`` (bool [N]) defaults to "A_i > 0". The bonus lies in
    [0, kappa*A_i], so it never flips a sign; eta is computed from detached log-probs.
    RECON (spec A6 + ERRATA): the formula was cross-checked against a third-party transcription and fixed to
    apply only to correct, positive-advantage responses; lambda=2.5, kappa=0.5 are the paper's values as quoted
    by an OpenReview review (not read from the paper itself). The worked example in spec A6 (lambda=kappa=1)
    and its ERRATA redo (2.5, 0.5) are both reproduced by the tests.
    """
    if seq_logps is None:
        if logps is None:
            raise ValueError("xrpo needs seq_logps [N] (mean token log-prob) or logps [N, T] with response_mask")
        mask = torch.ones_like(logps) if response_mask is None else response_mask.to(logps.dtype)
        seq_logps = (logps * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    s = seq_logps.detach().to(torch.float64)
    base = grpo(rewards, group_ids, eps=eps, **kw)
    groups = Groups.of(group_ids)
    adv = base.advantages
    eta = torch.exp(s - groups.mean(s)).to(adv.dtype)
    is_correct = adv > 0 if correct is None else (correct.bool() & (adv > 0))
    bonus = torch.minimum((novelty_lambda * (1 - eta)).clamp(min=0), novelty_kappa * adv)
    bonus = torch.where(is_correct, bonus, torch.zeros_like(bonus))
    result = _finish(adv + bonus, base.keep_mask, sharpened_frac=float((bonus > 0).float().mean()),
                     bonus_mean=float(bonus.mean()))
    result.metrics.update({k: v for k, v in base.metrics.items() if k not in result.metrics})
    return result


@register_advantage_estimator("awm")
def awm(rewards: Tensor, group_ids: Tensor, eps: float = 1e-4, global_std: bool = True,
        adv_clip_max: float = 5.0, advantage_max: float = 1.0, reward_weights=None,
        **_: object) -> AdvantageResult:
    """AWM advantages (Xue et al. 2025, arXiv 2509.25050, ``PerPromptStatTracker``):

        A = (r - mean_prompt r) / (std + eps)   std = POPULATION std (ddof=0), of the whole batch if global_std
        A = clip(A, -adv_clip_max, adv_clip_max) / adv_clip_max * advantage_max
    Constant prompt -> A=0; constant batch -> 0/(0+eps) = 0. A prompt with ONE sample is a constant prompt: the
    tracker's mean of its one reward is that reward, so A=0 (scxue/advantage_weighted_matching
    ``flow_grpo/stat_tracking.py``, ``PerPromptStatTracker.update``), whatever ``global_std``.
    Pair with ``get_policy_loss("awm")``.
    """
    r = scalar_rewards(rewards, reward_weights)
    groups = Groups.of(group_ids)
    adv = group_normalize(r, groups, eps, unbiased=False, scale="batch" if global_std else "group",
                          singleton="zero")
    adv = adv.clamp(-adv_clip_max, adv_clip_max) / adv_clip_max * advantage_max
    return _finish(adv, ~torch.isnan(r), **_group_metrics(r, groups))


# ----------------------------------------------------------------------------------------------- trees

def tree_depths(parent_ids: Tensor) -> Tensor:
    """Depth of each node (roots, ``parent_ids == -1``, have depth 0). Raises on a cycle."""
    n = len(parent_ids)
    depth = torch.zeros(n, dtype=torch.long, device=parent_ids.device)
    cur = parent_ids.clone()
    for _ in range(n + 1):
        live = cur >= 0
        if not live.any():
            return depth
        depth += live.long()
        cur = torch.where(live, parent_ids[cur.clamp(min=0)], cur)
    raise ValueError("parent_ids contain a cycle")


def tree_values(leaf_rewards: Tensor, parent_ids: Tensor, edge_logps: Tensor | None = None,
                alpha: float = 1.0) -> Tensor:
    """Fuse leaf rewards upward: V(leaf) = reward; V(n) = mean of the leaf rewards under n (default), or
    V(n) = sum_c softmax_c(alpha * edge_logps[c]) V(c) over n's children when ``edge_logps`` is given."""
    depth = tree_depths(parent_ids)
    n = len(parent_ids)
    is_parent = torch.zeros(n, dtype=torch.bool, device=parent_ids.device)
    is_parent[parent_ids[parent_ids >= 0]] = True
    values = leaf_rewards.clone().to(torch.float64)
    leaf_sum = torch.where(is_parent, torch.zeros_like(values), values)
    leaf_cnt = (~is_parent).to(torch.float64)
    for d in range(int(depth.max()) if n else 0, 0, -1):
        kids = torch.nonzero(depth == d).flatten()
        par = parent_ids[kids]
        if edge_logps is None:
            leaf_sum = leaf_sum.index_add(0, par, leaf_sum[kids])
            leaf_cnt = leaf_cnt.index_add(0, par, leaf_cnt[kids])
            values[par] = leaf_sum[par] / leaf_cnt[par]
        else:
            logit = alpha * edge_logps[kids].to(torch.float64)
            top = torch.full((n,), -math.inf, dtype=torch.float64, device=values.device).scatter_reduce(0, par, logit, "amax")
            w = torch.exp(logit - top[par])
            z = torch.zeros(n, dtype=torch.float64, device=values.device).index_add(0, par, w)
            fused = torch.zeros(n, dtype=torch.float64, device=values.device).index_add(0, par, w / z[par] * values[kids])
            values[par] = fused[par]
    return values.to(leaf_rewards.dtype)


@register_advantage_estimator("branch")
def branch(rewards: Tensor, group_ids: Tensor, parent_ids: Tensor | None = None,
           edge_logps: Tensor | None = None, alpha: float = 1.0, eps: float = 1e-8, min_std: float = 1e-6,
           adv_clip_max: float | None = None, token_node_ids: Tensor | None = None,
           **_: object) -> AdvantageResult:
    """Tree / segment advantages (BranchGRPO, Li et al. 2025, arXiv 2509.06040; TreeRL/TreePO for LLMs).

    Rows are tree NODES: ``rewards[i]`` is node i's reward (read for leaves only; internal values are fused
    upward, see ``tree_values``), ``parent_ids[i]`` its parent row (-1 for a root), ``group_ids[i]`` its tree.

        V(leaf) = reward;  V(n) = mean of the leaves under n  (or softmax(alpha*edge_logps) over children)
        for each (tree, depth): A(n) = 0 if |nodes| <= 1 or std < min_std else (V(n) - mean) / (std + eps)
    (unbiased std). A(n) is the advantage of the segment from n's parent to n; roots get 0. Optional clip
    to +-adv_clip_max (BranchGRPO uses 5.0).

    ``token_node_ids`` (long [M, T], -1 = no node / padding) maps each token of M training sequences to the
    node whose segment it belongs to; then ``advantages`` is token-level [M, T] and ``keep_mask`` is [M]
    (a sequence is kept if any of its tokens has a node). Without it: node-level [N].
    """
    if parent_ids is None:
        raise ValueError("branch needs parent_ids (long [N], -1 for roots)")
    r = scalar_rewards(rewards)
    values = tree_values(r, parent_ids, edge_logps, alpha).to(torch.float64)
    depth = tree_depths(parent_ids)
    n_depth = int(depth.max()) + 1 if len(depth) else 1
    cell = Groups.of(Groups.of(group_ids).inverse * n_depth + depth)
    mean = cell.mean(values)
    std = cell.std(values)
    count = cell.sizes[cell.inverse]
    flat = (count <= 1) | (std < min_std)
    adv = torch.where(flat, torch.zeros_like(values), (values - mean) / (std + eps))
    if adv_clip_max is not None:
        adv = adv.clamp(-adv_clip_max, adv_clip_max)
    adv = adv.to(r.dtype)
    metrics = {"num_nodes": float(len(r)), "max_depth": float(n_depth - 1)}
    if token_node_ids is None:
        return _finish(adv, torch.ones(len(r), dtype=torch.bool, device=r.device), **metrics)
    has_node = token_node_ids >= 0
    tok = torch.where(has_node, adv[token_node_ids.clamp(min=0)], torch.zeros((), dtype=adv.dtype, device=adv.device))
    keep = has_node.any(dim=1)
    metrics.update(adv_abs_mean=float(tok[has_node].abs().mean()) if has_node.any() else 0.0,
                   keep_frac=float(keep.float().mean()) if keep.numel() else 0.0)
    return AdvantageResult(tok, keep, metrics)
