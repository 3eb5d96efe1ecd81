"""Value-based advantage estimators (``ppo_gae``, ``pdppo``) and PPO's clipped value loss.

The critic-free estimators (``grpo``, ...) compare rollouts of one prompt; these use learned per-token values
instead (value heads on the policy's hidden states, ``veripo.models.value_heads``). Token-level MDP of a
completion y_1..y_L: the state before token t is (x, y_<t), the action is y_t, the transition is deterministic and
the outcome reward r arrives with the last token (plus optional per-token rewards, e.g. a KL penalty).

Same registry and signature as the other estimators: ``fn(rewards [N], group_ids [N], values=[N, T],
values2=[N, T], response_mask=[N, T], ...) -> AdvantageResult`` with token-level ``advantages`` [N, T]
(0 on padding), ``keep_mask`` [N] and ``returns``, the value heads' regression targets. ``group_ids`` is
accepted for compatibility and unused (a value baseline needs no groups).
"""
from __future__ import annotations

import torch
from torch import Tensor

from veripo.algos.advantages import (
    AdvantageResult,
    masked_whiten,
    register_advantage_estimator,
    scalar_rewards,
)
from veripo.algos.aggregation import aggregate_loss, masked_mean
from veripo.errors import VeripoError

COMBINE_MODES = ("min", "mean", "max_advantage")


class MissingValuesError(VeripoError, ValueError):
    """A value-based estimator was called without the value heads' estimates (config asks for ``ppo_gae`` /
    ``pdppo`` but the stage does not compute values)."""


def gae(token_rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over the masked tokens of each row (Schulman et al. 2016, arXiv 1506.02438):

        delta_t = r_t + gamma * V_{t'} - V_t       t' = the row's next masked-in position (V := 0 after the last)
        A_t     = delta_t + gamma * lam * A_{t'}      (A := 0 after the last)
        returns_t = A_t + V_t                         (the lambda-return, the value target)

    Masked-out positions are skipped (they neither bootstrap nor accumulate, so padding values never leak, and a
    hole in the mask joins its two sides) and get A = returns = 0. lam = 1: A_t = sum_{k>=t} gamma^(k-t) r_k - V_t
    (Monte Carlo); lam = 0: the one-step TD error. Inputs [N, T]; computed in float64, returned in values' dtype.
    """
    if not (token_rewards.shape == values.shape == mask.shape) or values.dim() != 2:
        raise ValueError(f"token_rewards, values and mask must all be [N, T]; got {tuple(token_rewards.shape)}, "
                         f"{tuple(values.shape)}, {tuple(mask.shape)}")
    r = token_rewards.detach().to(torch.float64)
    v = values.detach().to(torch.float64)
    m = mask.to(torch.bool)
    adv = torch.zeros_like(v)
    next_value = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
    next_adv = torch.zeros_like(next_value)
    for t in range(v.shape[1] - 1, -1, -1):
        delta = r[:, t] + gamma * next_value - v[:, t]
        a_t = delta + gamma * lam * next_adv
        live = m[:, t]
        adv[:, t] = torch.where(live, a_t, torch.zeros_like(a_t))
        next_adv = torch.where(live, a_t, next_adv)
        next_value = torch.where(live, v[:, t], next_value)
    returns = torch.where(m, adv + v, torch.zeros_like(v))
    return adv.to(values.dtype), returns.to(values.dtype)


def outcome_token_rewards(rewards: Tensor, mask: Tensor, token_rewards: Tensor | None = None) -> Tensor:
    """[N, T]: each row's scalar reward on its LAST masked-in token (0 elsewhere), plus ``token_rewards`` if given.
    A row with no tokens gets nothing."""
    m = mask.to(torch.bool)
    t = torch.arange(m.shape[1], device=m.device).expand_as(m)
    last = torch.where(m, t, torch.full_like(t, -1)).amax(dim=1)
    out = torch.zeros(m.shape, dtype=rewards.dtype, device=rewards.device)
    rows = torch.nonzero(last >= 0).flatten()
    out[rows, last[rows]] = rewards[rows]
    if token_rewards is not None:
        out = out + token_rewards.to(out.dtype) * m
    return out


def _inputs(rewards: Tensor, values: Tensor | None, response_mask: Tensor | None, name: str
            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(rewards with NaN -> 0, mask with unscored rows cleared, valid rows, float values)."""
    if values is None:
        raise MissingValuesError(f"advantage estimator {name!r} needs values=[N, T] (the value heads' estimate before "
                                 "each completion token); the stage must compute them with veripo.models.value_heads")
    if values.dim() != 2:
        raise ValueError(f"{name}: values must be [N, T], got shape {tuple(values.shape)}")
    v = values.detach() if values.is_floating_point() else values.detach().float()
    r = scalar_rewards(rewards)
    if r.shape != (v.shape[0],):
        raise ValueError(f"{name}: rewards have {r.shape[0]} rows but values have shape {tuple(v.shape)}")
    valid = ~torch.isnan(r)
    mask = torch.ones_like(v) if response_mask is None else response_mask.to(v.dtype)
    if mask.shape != v.shape:
        raise ValueError(f"{name}: response_mask {tuple(mask.shape)} and values {tuple(v.shape)} differ in shape")
    mask = mask * valid.to(v.dtype).unsqueeze(1)
    return torch.nan_to_num(r, nan=0.0).to(v.dtype), mask, valid, v


def _result(adv: Tensor, returns: Tensor, mask: Tensor, valid: Tensor, whiten: bool, **metrics: float
            ) -> AdvantageResult:
    if whiten:
        adv = masked_whiten(adv, mask) * mask
    live = mask > 0
    metrics = {"adv_abs_mean": float(adv[live].abs().mean()) if live.any() else 0.0,
               "keep_frac": float(valid.float().mean()) if valid.numel() else 0.0, **metrics}
    return AdvantageResult(adv, valid, {k: float(v) for k, v in metrics.items()}, returns=returns)


@register_advantage_estimator("ppo_gae", aliases=("gae",))
def ppo_gae(rewards: Tensor, group_ids: Tensor, values: Tensor | None = None,
            response_mask: Tensor | None = None, gamma: float = 1.0, lam: float = 0.95, whiten: bool = True,
            token_rewards: Tensor | None = None, **_: object) -> AdvantageResult:
    """PPO with a learned critic: token-level GAE advantages (Schulman et al. 2017, arXiv 1707.06347; GAE arXiv
    1506.02438; the RLHF form of Ouyang et al. 2022 with the reward on the last token).

        r_t = rewards on the last completion token (+ token_rewards_t);  A, returns = gae(r, values, mask, gamma, lam)
        whiten: A := masked_whiten(A, mask)   (token-weighted mean 0, unbiased std 1;
                                               verl ``compute_gae_advantage_return``)
    Defaults: gamma=1.0, lam=0.95 (TRL PPOTrainer; verl uses lam=1.0). ``returns`` [N, T] is the value target of
    ``clipped_value_loss``. An unscored (NaN) reward: the row gets A = returns = 0 and keep_mask False.
    """
    r, mask, valid, v = _inputs(rewards, values, response_mask, "ppo_gae")
    adv, returns = gae(outcome_token_rewards(r, mask, token_rewards), v, mask, gamma, lam)
    return _result(adv, returns, mask, valid, whiten, value_mean=float(masked_mean(v, mask)))


@register_advantage_estimator("pdppo")
def pdppo(rewards: Tensor, group_ids: Tensor, values: Tensor | None = None, values2: Tensor | None = None,
          response_mask: Tensor | None = None, combine: str = "min", gamma: float = 1.0, lam: float = 0.95,
          whiten: bool = True, token_rewards: Tensor | None = None, **_: object) -> AdvantageResult:
    """PDPPO's dual critic, adapted to LLMs: GAE from two value heads (Felizardo et al. 2025, "Post-Decision
    Proximal Policy Optimization with Dual Critic Networks", arXiv 2504.05150).

        combine="min"  (default): V = min(V1, V2);  A = gae(r, V)        (pessimistic, clipped-double-Q style)
        combine="mean":           V = (V1 + V2)/2;  A = gae(r, V)
        combine="max_advantage":  A = max(gae(r, V1), gae(r, V2))         (the paper's A = max(A^post, A^pre))
        returns[..., k] = gae(r, V_k) + V_k   (each head regresses on its own lambda-return, as the paper's
                                               separately optimised critics)
        whiten as ``ppo_gae``
    Adaptation: the paper's two critics see the pre-decision state s_t and the post-decision state s^x_t; a
    token MDP's transition is deterministic, so s^x_t = (x, y_<=t) is the next state and the two critics become
    two value heads on the same hidden states (independently initialised). ``returns`` is [N, T, 2].
    """
    if combine not in COMBINE_MODES:
        raise ValueError(f"pdppo combine must be one of {COMBINE_MODES}, got {combine!r}")
    if values2 is None:
        raise MissingValuesError("advantage estimator 'pdppo' needs values2=[N, T]: the second value head's "
                                 "estimates (values= is the first)")
    if values is not None and values2.shape != values.shape:
        raise ValueError(f"pdppo: values {tuple(values.shape)} and values2 {tuple(values2.shape)} differ in shape")
    r, mask, valid, v1 = _inputs(rewards, values, response_mask, "pdppo")
    v2 = values2.to(v1.dtype)
    tok_r = outcome_token_rewards(r, mask, token_rewards)
    a1, ret1 = gae(tok_r, v1, mask, gamma, lam)
    a2, ret2 = gae(tok_r, v2, mask, gamma, lam)
    if combine == "max_advantage":
        adv = torch.maximum(a1, a2)
    else:
        v = torch.minimum(v1, v2) if combine == "min" else (v1 + v2) / 2
        adv, _ = gae(tok_r, v, mask, gamma, lam)
    return _result(adv, torch.stack([ret1, ret2], dim=-1), mask, valid, whiten,
                   value_gap=float(masked_mean((v1 - v2).abs(), mask)))


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
                       clip_range: float | None = 0.2, loss_agg_mode: str = "bnpo",
                       keep_mask: Tensor | None = None, **agg: object) -> tuple[Tensor, dict[str, float]]:
    """PPO's clipped value loss (Schulman et al. 2017, arXiv 1707.06347, the PPO2 / baselines form; verl
    ``compute_value_loss``):

        V_clip = V_old + clamp(V - V_old, -clip_range, clip_range)
        l_t    = 0.5 * max( (V_t - R_t)^2, (V_clip_t - R_t)^2 )          (clip_range=None: 0.5 (V_t - R_t)^2)
        loss   = aggregate_loss(sum_k l_t,k, mask, loss_agg_mode)        (K value heads: values [N, T, K])
    ``old_values``: the heads' estimates when the rollouts were scored (detached), ``returns`` the estimator's
    targets. Defaults: clip_range 0.2 (TRL PPOTrainer ``cliprange_value``; verl 0.5), token mean. Each head has
    its own term, so summing over heads gives every head its full gradient. ``agg`` takes ``aggregate_loss``'s
    keyword arguments (num_items_in_batch, grad_accum_steps, ...). Metrics: ``vf_clipfrac``, ``vf_loss``,
    ``vf_explained_var`` (1 - Var(R - V) / Var(R) over the masked tokens).
    """
    if values.shape != old_values.shape or values.shape != returns.shape:
        raise ValueError(f"values, old_values and returns must share a shape; got {tuple(values.shape)}, "
                         f"{tuple(old_values.shape)}, {tuple(returns.shape)}")
    if values.shape[:2] != mask.shape:
        raise ValueError(f"mask must be [N, T] = {tuple(values.shape[:2])}, got {tuple(mask.shape)}")
    old, target = old_values.detach().to(values.dtype), returns.detach().to(values.dtype)
    unclipped = (values - target) ** 2
    if clip_range is None:
        per, clipped_more = 0.5 * unclipped, torch.zeros_like(unclipped, dtype=torch.bool)
    else:
        v_clip = old + torch.clamp(values - old, -clip_range, clip_range)
        clipped = (v_clip - target) ** 2
        per, clipped_more = 0.5 * torch.maximum(unclipped, clipped), clipped > unclipped
    per_token = per.sum(-1) if values.dim() == 3 else per
    loss = aggregate_loss(per_token, mask, loss_agg_mode, keep_mask=keep_mask, **agg)
    with torch.no_grad():
        m = mask.to(values.dtype)
        if keep_mask is not None:
            m = m * keep_mask.to(m.dtype).unsqueeze(1)
        mk = m.unsqueeze(-1).expand_as(values) if values.dim() == 3 else m
        resid, tgt = (target - values.detach())[mk > 0], target[mk > 0]
        ev = 1.0 - float(resid.var() / tgt.var()) if tgt.numel() > 1 and float(tgt.var()) > 0 else 0.0
        metrics = {"vf_loss": float(loss.detach()), "vf_clipfrac": float(masked_mean(clipped_more.to(m.dtype), mk)),
                   "vf_explained_var": ev}
    return loss, metrics
