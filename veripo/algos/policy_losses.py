"""Policy losses for the GRPO stage: ``fn(logps, old_logps, advantages, mask, ref_logps=None, **hp) -> (loss, metrics)``.

* ``logps`` [N, T]: log pi_theta of the sampled tokens (with grad). ``old_logps`` [N, T]: the sampling policy's
  (None = ``logps.detach()``, i.e. on-policy, ratio 1). ``advantages``: [N] (broadcast over tokens) or [N, T].
  ``mask`` [N, T]: completion tokens that count. ``ref_logps`` [N, T]: the reference policy, only for the KL.
* ``keep_mask`` (bool [N], optional hparam): rows an advantage estimator or filter dropped (MC-GRPO pivots,
  GD²PO conflicts, DAPO dynamic sampling); they add nothing and count in no denominator, neither tokens nor rows
  (``aggregate_loss``'s "Masked rows": the loss of the batch with those rows deleted, as the methods' code does).
* Aggregation: ``loss_agg_mode`` plus the keyword arguments of ``aggregate_loss`` (num_items_in_batch,
  grad_accum_steps, ...).
* ``metrics``: python floats -- clip fractions, ratio stats, kl, and the loss itself.

The GRPO trainer calls ``get_policy_loss("ppo_clip")(logps=..., old_logps=..., advantages=..., mask=...,
ref_logps=..., clip_low=0.2, clip_high=0.28, beta=0.0, loss_agg_mode="dapo")``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from veripo.algos.aggregation import aggregate_loss, masked_mean
from veripo.algos.groups import Groups
from veripo.algos.registry import Registry
from veripo.options import forwards_kwargs

POLICY_LOSSES = Registry("policy loss")
_AGG_KEYS = ("num_items_in_batch", "num_rows_in_batch", "num_processes", "grad_accum_steps",
             "steps_per_generation", "max_completion_length")


def register_policy_loss(name: str, aliases: tuple[str, ...] = ()) -> Callable:
    """Decorator: register ``fn(logps, old_logps, advantages, mask, ref_logps=None, **hp) -> (loss, metrics)``."""
    return POLICY_LOSSES.register(name, aliases)


def get_policy_loss(name: str) -> Callable[..., tuple[Tensor, dict[str, float]]]:
    """The policy loss registered under ``name`` (an unknown name raises and lists the valid ones)."""
    return POLICY_LOSSES.get(name)


def list_policy_losses() -> list[str]:
    return POLICY_LOSSES.names()


def k3_kl(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi_theta || pi_ref): exp(ref - logp) - (ref - logp) - 1 >= 0 (Schulman 2020)."""
    d = ref_logps - logps
    return torch.exp(d) - d - 1


def _prepare(logps: Tensor, old_logps: Tensor | None, advantages: Tensor, mask: Tensor,
             keep_mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    if logps.dim() != 2 or mask.shape != logps.shape:
        raise ValueError(f"logps and mask must both be [N, T]; got {tuple(logps.shape)} and {tuple(mask.shape)}")
    old = logps.detach() if old_logps is None else old_logps.detach()
    adv = advantages.detach().to(logps.dtype)
    adv = adv.unsqueeze(1) if adv.dim() == 1 else adv
    m = mask.to(logps.dtype)
    if keep_mask is not None:
        m = m * keep_mask.to(logps.dtype).unsqueeze(1)
    return old, adv, m


def _add_kl(per_token: Tensor, logps: Tensor, ref_logps: Tensor | None, beta: float, m: Tensor,
            metrics: dict[str, float]) -> Tensor:
    if ref_logps is not None:
        kl = k3_kl(logps, ref_logps.detach())
        metrics["kl"] = float(masked_mean(kl.detach(), m))
        if beta != 0.0:
            return per_token + beta * kl
    elif beta != 0.0:
        raise ValueError("beta != 0 needs ref_logps (the reference policy's per-token log-probs) for the KL term")
    return per_token


def _stat_mean(x: Tensor, m: Tensor) -> float:
    """Mean of a per-token statistic over masked tokens; a per-sequence one ([N, 1]) over rows (as TRL logs)."""
    x = x.to(m.dtype)
    if x.shape[-1] == 1 and m.shape[-1] != 1:
        return float(x.mean()) if x.numel() else 0.0
    return float(masked_mean(x.expand_as(m), m))


def _aggregate(per_token: Tensor, m: Tensor, mode: str, hp: dict, keep_mask: Tensor | None) -> Tensor:
    return aggregate_loss(per_token, m, mode, keep_mask=keep_mask, **{k: hp[k] for k in _AGG_KEYS if k in hp})


@register_policy_loss("ppo_clip", aliases=("grpo", "dapo", "ppo"))
@forwards_kwargs(aggregate_loss)
def ppo_clip(logps: Tensor, old_logps: Tensor | None, advantages: Tensor, mask: Tensor,
             ref_logps: Tensor | None = None, *, clip_low: float = 0.2, clip_high: float | None = None,
             dual_clip: float | None = None, delta: float | None = None, beta: float = 0.0,
             importance_sampling_level: str = "token", loss_agg_mode: str = "dapo",
             keep_mask: Tensor | None = None, is_weights: Tensor | None = None,
             **hp: object) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped surrogate with decoupled clip range (DAPO clip-higher) and optional dual clip.

        rho = exp(logp - old_logp)     (token level; "sequence": exp(masked mean of the log-ratio), GSPO)
        l   = -min(rho A, clip(rho, 1 - clip_low, 1 + clip_high) A)
        dual_clip = c (verl clip_ratio_c, > 1): for A < 0, l = min(l, -c A)     (Ye et al. 2020)
        delta (TRL two-sided clipping): rho := min(rho, delta) in the unclipped branch
        is_weights w ([N, T] or [N, 1], optional): l := w * l, a sampler/learner mismatch correction such as
            ``sol_rl.truncated_is_weights`` (TRL's ``importance_sampling_ratio``; applied before the KL term)
        + beta * k3(logp, ref_logp)    (per token; needs ref_logps when beta != 0)
    Schulman et al. 2017 (arXiv 1707.06347); DAPO clip-higher: Yu et al. 2025 (arXiv 2503.14476), defaults
    clip_low=0.2, clip_high=0.28 (clip_high=None means symmetric). Without ``dual_clip`` and ``delta`` this is
    TRL 1.16's ``grpo/bnpo/dr_grpo/dapo`` per-token loss.
    """
    old, adv, m = _prepare(logps, old_logps, advantages, mask, keep_mask)
    clip_high = clip_low if clip_high is None else clip_high
    log_ratio = logps - old
    if importance_sampling_level == "sequence":
        log_ratio = ((log_ratio * m).sum(-1) / m.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    elif importance_sampling_level != "token":
        raise ValueError(f"importance_sampling_level must be 'token' or 'sequence', got {importance_sampling_level!r}")
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    unclipped = ratio if delta is None else torch.clamp(ratio, max=delta)
    per_token = -torch.min(unclipped * adv, clipped * adv)
    metrics: dict[str, float] = {}
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1 (verl clip_ratio_c, e.g. 3.0), got {dual_clip}")
        capped = torch.min(per_token, -dual_clip * adv)
        is_dual = (adv < 0) & (capped < per_token)
        per_token = torch.where(adv < 0, capped, per_token)
        metrics["clip_frac/dual"] = _stat_mean(is_dual, m)
    if is_weights is not None:
        w = is_weights.detach().to(per_token.dtype)
        per_token = per_token * w
        metrics["is_weight/mean"] = _stat_mean(w, m)
    per_token = _add_kl(per_token, logps, ref_logps, beta, m, metrics)
    loss = _aggregate(per_token, m, loss_agg_mode, hp, keep_mask)
    with torch.no_grad():
        r = ratio.detach()
        low = (r < 1 - clip_low) & (adv < 0)
        high = (r > 1 + clip_high) & (adv > 0)
        rows = r.expand(-1, m.shape[1]) if r.shape[1] == 1 else r
        live = m > 0
        metrics.update({
            "clip_frac/low": _stat_mean(low, m),
            "clip_frac/high": _stat_mean(high, m),
            "clip_frac": _stat_mean(low | high, m),
            "ratio/mean": _stat_mean(r, m),
            "ratio/max": float(rows[live].max()) if live.any() else 1.0,
            "ratio/min": float(rows[live].min()) if live.any() else 1.0,
            "loss": float(loss.detach()),
        })
    return loss, metrics


@register_policy_loss("awm")
@forwards_kwargs(aggregate_loss)
def awm(logps: Tensor, old_logps: Tensor | None, advantages: Tensor, mask: Tensor,
        ref_logps: Tensor | None = None, *, beta: float = 0.0, loss_agg_mode: str = "grpo",
        keep_mask: Tensor | None = None, **hp: object) -> tuple[Tensor, dict[str, float]]:
    """Advantage-weighted log-likelihood (AWM's LLM transfer; Xue et al. 2025, arXiv 2509.25050):

        L = -E_i[ A_i * (1/|y_i|) sum_t log pi_theta(y_it) ]   (+ beta * k3 KL)
    i.e. per-token loss -A * logp with ``loss_agg_mode="grpo"`` (seq-mean-token-mean). Its gradient equals the
    on-policy (ratio 1) GRPO gradient with the SFT NLL as surrogate; no clipping, ``old_logps`` unused.
    Use with the ``awm`` advantage estimator (population std, clipped to +-5 and rescaled to +-1).
    """
    _, adv, m = _prepare(logps, old_logps, advantages, mask, keep_mask)
    metrics: dict[str, float] = {}
    per_token = _add_kl(-adv * logps, logps, ref_logps, beta, m, metrics)
    loss = _aggregate(per_token, m, loss_agg_mode, hp, keep_mask)
    metrics["loss"] = float(loss.detach())
    return loss, metrics


@register_policy_loss("drpo")
def drpo(logps: Tensor, old_logps: Tensor | None, advantages: Tensor | None, mask: Tensor,
         ref_logps: Tensor | None = None, *, rewards: Tensor, group_ids: Tensor, lam: float = 0.1,
         tau: float = 10.0, beta_kl: float = 1e3, kl_delta: float = 1e-4,
         max_response_length: int | None = None, num_questions: int | None = None,
         keep_mask: Tensor | None = None, **_: object) -> tuple[Tensor, dict[str, float]]:
    """DRPO discriminative objective with a length-weighted positive set (Li et al. 2025, arXiv 2510.04474;
    code Optimization-AI/DRPO ``compute_policy_loss_drpo``). ``advantages`` is ignored: DRPO needs the raw binary
    ``rewards`` [N] (1 correct, 0 wrong) and ``group_ids`` [N].

        s_i = (1/|o_i|) sum_t log pi_theta(o_it)      l_i = |o_i| / L_pad   (L_pad = max_response_length or T)
        w~_i = softmax over the group's positives of (1 - l_i)/lam
        J_q = sum_pos w~_i s_i - tau * log( mean_neg exp(s_j / tau) )
        loss = -(1/Q) sum_{valid q} J_q + max(beta_kl (KL - kl_delta), 0).detach() * KL
        KL = masked mean of (old_logp - logp) over all tokens
    A group is valid when it has a positive and a negative; Q counts ALL groups (``num_questions`` overrides,
    e.g. the global count across ranks). Gradient on s_i: +w~_i for positives, -softmax_neg(s/tau)_i for
    negatives, so a correct rollout never gets a negative signal. The official code's negative term has the
    constant value tau with the same gradient; here the true log-mean-exp value is returned. Rewards other than
    exactly 0/1 fall out of both sets. No valid group -> loss 0 (graph kept). Defaults from the 1.5B/7B scripts.
    """
    old, _, m = _prepare(logps, old_logps, logps.new_zeros(len(logps)), mask, keep_mask)
    groups = Groups.of(group_ids)
    lengths = m.sum(-1)
    s = (logps * m).sum(-1) / lengths.clamp(min=1.0)
    r = torch.as_tensor(rewards, dtype=logps.dtype, device=logps.device)
    pos, neg = r == 1, r == 0
    n_pos = groups.sum_per_group(pos.to(logps.dtype))
    n_neg = groups.sum_per_group(neg.to(logps.dtype))
    valid_group = (n_pos > 0) & (n_neg > 0)
    row_valid = valid_group[groups.inverse]
    pad = float(max_response_length if max_response_length is not None else mask.shape[-1])
    pos_logit = torch.where(pos & row_valid, (1 - lengths / pad) / lam, torch.full_like(s, float("-inf")))
    pos_w = _group_softmax(pos_logit, groups)
    neg_logit = torch.where(neg & row_valid, s / tau, torch.full_like(s, float("-inf")))
    neg_lse = _group_logsumexp(neg_logit, groups)
    log_mean_neg = torch.where(valid_group, neg_lse - torch.log(n_neg.clamp(min=1)), torch.zeros_like(neg_lse))
    j = groups.sum_per_group(pos_w.detach() * s) - tau * log_mean_neg
    q = num_questions if num_questions is not None else groups.num_groups
    objective = torch.where(valid_group, j, torch.zeros_like(j)).sum() / max(q, 1)
    if not bool(valid_group.any()):
        objective = 0.0 * s.sum()
    kl = masked_mean(old - logps, m)
    penalty = torch.clamp(beta_kl * (kl.detach() - kl_delta), min=0.0)
    loss = -objective + penalty * kl
    metrics = {"loss": float(loss.detach()), "kl": float(kl.detach()), "kl_penalty_coef": float(penalty),
               "valid_group_frac": float(valid_group.float().mean()) if groups.num_groups else 0.0,
               "objective": float(objective.detach())}
    return loss, metrics


def _group_logsumexp(logits: Tensor, groups: Groups) -> Tensor:
    """Per group: logsumexp of the finite entries (-inf for a group with none)."""
    top = torch.full((groups.num_groups,), float("-inf"), dtype=logits.dtype, device=logits.device)
    top = top.scatter_reduce(0, groups.inverse, logits.detach(), "amax")
    safe_top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    total = groups.sum_per_group(torch.exp(logits - safe_top[groups.inverse]))
    return torch.log(total.clamp(min=1e-30)) + safe_top  # clamp: an empty group must not give NaN gradients


def _group_softmax(logits: Tensor, groups: Groups) -> Tensor:
    """Per-row softmax within the group over the finite entries (0 for -inf entries)."""
    lse = _group_logsumexp(logits, groups)[groups.inverse]
    return torch.where(torch.isfinite(logits), torch.exp(logits - lse), torch.zeros_like(logits))


def drpo_gradient_coefficients(rewards: Tensor, lengths: Tensor, group_ids: Tensor, scores: Tensor,
                               lam: float = 0.1, tau: float = 10.0, max_response_length: float = 1.0) -> Tensor:
    """d J / d s_i for DRPO (the "positive-only, length-aware advantage"): +w~_i for positives,
    -softmax_neg(s/tau)_i for negatives, 0 elsewhere and in invalid groups (see ``drpo``)."""
    s = scores.detach().clone().requires_grad_(True)
    n, width = len(s), int(max(float(lengths.max()), 1.0))
    positions = torch.arange(width).unsqueeze(0)
    mask = (positions < lengths.unsqueeze(1)).to(s.dtype)
    logps = s.unsqueeze(1).expand(n, width) * mask
    loss, _ = drpo(logps, logps.detach(), None, mask, rewards=rewards, group_ids=group_ids, lam=lam, tau=tau,
                   beta_kl=0.0, max_response_length=max_response_length, num_questions=1)
    (grad,) = torch.autograd.grad(-loss, s)
    return grad
