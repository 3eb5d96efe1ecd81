"""Rollout controllers (the GFCR "Control" step): who gets sampled, how many rollouts each prompt gets, and which
partial rollouts are pruned. Pure logic on tensors and numbers; each controller keeps a small state object with
``state_dict()`` / ``load_state_dict()`` so a resumed run continues exactly.

* ``DifficultyTracker``: running pass@k per prompt over a window, difficulty bins with hysteresis (GDRO Eqs 10-11).
* ``PromptGDRO``: per-bin EMA loss -> multiplicative weights -> advantage multipliers and a sampling mix (GDRO).
* ``RolloutGDRO``: budget-neutral rollouts per prompt from the square-root law + a shadow price (GDRO).
* ``XRPOAllocator``: spend extra rollouts where the Student-t confidence half-width shrinks most (XRPO).
* ``ARRoLPruner``: keep G of N partial rollouts whose predicted success is balanced around rho (ARRoL).
"""
from __future__ import annotations

import itertools
import math
from collections import deque
from typing import Any, Sequence

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


# ----------------------------------------------------------------------------------------------- GDRO

class DifficultyTracker:
    """Online difficulty classifier of GDRO (Panaganti et al. 2026, arXiv 2601.19280, Eqs 10-11).

        c_t(x) = 1[any of the k rollouts of x is correct];  pass@k(x) = mean of c over the last ``window`` visits
        bin(x) = b with pass@k in [edges[b-1], edges[b])  (len(edges)+1 bins; bin 0 = hardest)
    Hysteresis: a prompt stays in its previous bin while pass@k is inside that bin widened by ``hysteresis``.
    Unseen prompts get ``unseen_pass_rate``. Defaults: the paper's edges 0.1..0.9, window 50, hysteresis 0.03.
    """

    def __init__(self, edges: Sequence[float] = (0.1, 0.2, 0.4, 0.6, 0.8, 0.9), window: int = 50,
                 hysteresis: float = 0.03, unseen_pass_rate: float = 0.5) -> None:
        if list(edges) != sorted(edges):
            raise ValueError(f"bin edges must be increasing, got {list(edges)}")
        self.edges = [float(e) for e in edges]
        self.window = window
        self.hysteresis = hysteresis
        self.unseen_pass_rate = unseen_pass_rate
        self._history: dict[str, deque] = {}
        self._bin: dict[str, int] = {}

    @property
    def num_bins(self) -> int:
        return len(self.edges) + 1

    def update(self, prompt_ids: Sequence[Any], any_correct: Sequence[bool] | Tensor) -> None:
        """Record one step's outcome c_t(x) for each prompt, then re-bin those prompts."""
        for pid, c in zip(prompt_ids, [bool(v) for v in any_correct]):
            key = str(pid)
            self._history.setdefault(key, deque(maxlen=self.window)).append(1.0 if c else 0.0)
            self._bin[key] = self._rebin(key)

    def pass_at_k(self, prompt_id: Any) -> float:
        hist = self._history.get(str(prompt_id))
        return sum(hist) / len(hist) if hist else self.unseen_pass_rate

    def _raw_bin(self, value: float) -> int:
        return sum(1 for e in self.edges if value >= e)

    def _rebin(self, key: str) -> int:
        value = self.pass_at_k(key)
        prev = self._bin.get(key)
        if prev is not None:
            lo = self.edges[prev - 1] if prev > 0 else -math.inf
            hi = self.edges[prev] if prev < len(self.edges) else math.inf
            if lo - self.hysteresis <= value < hi + self.hysteresis:
                return prev
        return self._raw_bin(value)

    def bins(self, prompt_ids: Sequence[Any]) -> Tensor:
        """Bin index per prompt (long [P])."""
        return torch.tensor([self._bin.get(str(p), self._raw_bin(self.pass_at_k(p))) for p in prompt_ids],
                            dtype=torch.long)

    def state_dict(self) -> dict:
        return {"edges": self.edges, "window": self.window, "hysteresis": self.hysteresis,
                "unseen_pass_rate": self.unseen_pass_rate,
                "history": {k: list(v) for k, v in self._history.items()}, "bin": dict(self._bin)}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(state["edges"], state["window"], state["hysteresis"], state["unseen_pass_rate"])
        self._history = {k: deque(v, maxlen=self.window) for k, v in state["history"].items()}
        self._bin = {k: int(v) for k, v in state["bin"].items()}


def bin_mean_losses(per_prompt_loss: Tensor, bin_ids: Tensor, num_bins: int) -> tuple[Tensor, Tensor]:
    """(mean loss per bin [B], present [B] bool): the batch mean prompt loss of each bin (GDRO Eq 13)."""
    loss = per_prompt_loss.detach().to(torch.float64)
    bin_ids = bin_ids.cpu()
    total = torch.zeros(num_bins, dtype=torch.float64).index_add(0, bin_ids, loss.cpu())
    count = torch.bincount(bin_ids, minlength=num_bins).to(torch.float64)
    return total / count.clamp(min=1), count > 0


class PromptGDRO:
    """Prompt-GDRO, the data adversary (GDRO, arXiv 2601.19280, Eqs 12-16; code kishanpb/verl-gdro):

        S_t(b) = (1 - ema) S_{t-1}(b) + ema * mean_loss_t(b)        (bins absent from the batch keep S)
        w_t(b) = exp(eta * clip(S_t(b), -C, C))                        (C = ``score_clip``; None = no clip)
        q_t(b) = (1 - gamma) w / sum w + gamma / B                     (mixing floor: no bin starves)
        A_ij  <- A_ij * min(w_t(bin(x_i)), w_max)                      (``advantage_multipliers``)
    Prompts are re-weighted, not resampled; ``sample_bins`` draws from q for a curriculum sampler if wanted.
    Defaults: eta=0.65, gamma=0.01, w_max=15, ema=0.12 (paper scripts); the paper's C was not found.
    RECON corrected by the ERRATA from the paper's own text (the spec's "EMA_b - EMA_global" and resampling
    rule were wrong). Tests reproduce the ERRATA numbers (1 step and 20 steps from S = 0).
    """

    def __init__(self, num_bins: int, eta: float = 0.65, gamma: float = 0.01, weight_max: float = 15.0,
                 ema: float = 0.12, score_clip: float | None = None) -> None:
        self.num_bins, self.eta, self.gamma = num_bins, eta, gamma
        self.weight_max, self.ema, self.score_clip = weight_max, ema, score_clip
        self.scores = torch.zeros(num_bins, dtype=torch.float64)

    def update(self, bin_losses: Tensor, present: Tensor | None = None) -> None:
        """One EMA step with this batch's mean loss per bin ([B]); ``present`` masks bins with no prompt."""
        losses = torch.as_tensor(bin_losses, dtype=torch.float64)
        present = torch.ones(self.num_bins, dtype=torch.bool) if present is None else present.bool()
        stepped = (1 - self.ema) * self.scores + self.ema * losses
        self.scores = torch.where(present, stepped, self.scores)

    @property
    def weights(self) -> Tensor:
        s = self.scores if self.score_clip is None else self.scores.clamp(-self.score_clip, self.score_clip)
        return torch.exp(self.eta * s)

    @property
    def probs(self) -> Tensor:
        w = self.weights
        return (1 - self.gamma) * w / w.sum() + self.gamma / self.num_bins

    def advantage_multipliers(self, bin_ids: Tensor) -> Tensor:
        """min(w(bin), w_max) per prompt (or rollout): multiply the advantages by this (Eq 16)."""
        return self.weights.clamp(max=self.weight_max).to(bin_ids.device)[bin_ids].to(torch.get_default_dtype())

    def sample_bins(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.multinomial(self.probs, n, replacement=True, generator=generator)

    def state_dict(self) -> dict:
        return {"num_bins": self.num_bins, "eta": self.eta, "gamma": self.gamma, "weight_max": self.weight_max,
                "ema": self.ema, "score_clip": self.score_clip, "scores": self.scores.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(state["num_bins"], state["eta"], state["gamma"], state["weight_max"], state["ema"],
                      state["score_clip"])
        self.scores = torch.tensor(state["scores"], dtype=torch.float64)


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


class RolloutGDRO:
    """Rollout-GDRO, the compute adversary (GDRO, arXiv 2601.19280, Eqs 17-21, 30-31): a budget-neutral number of
    rollouts per prompt.

        p_b  = per-rollout success rate of bin b (EMA over steps);   v_b = p_b (1 - p_b)   (variance proxy)
        n_i ~ sqrt(v_bin(i)) scaled so that sum_i n_i = n_bar * P exactly, each in [n_min, n_max]
        shadow price (Eq 21):  mu <- max(mu + dual_lr (n_realised_mean - n_bar), 0);  Eq 31: n_b(mu) = sqrt(v_b/mu)
    Defaults: n_bar=4, n_min=2 (GRPO needs 2), n_max=12, ema=0.2, dual_lr=0.05 (paper scripts).
    RECON, per the ERRATA: the paper LEARNS the arms with an EXP3P bandit plus a DP that meets the budget; this
    class uses the paper's analytic square-root law (Thm 4.2) with the p(1-p) proxy (the spec's choice, not the
    paper's abstract v_b). Checked: Eq 30 numbers for equal and unequal shares, mu = v/n^2, the additive dual step.
    """

    def __init__(self, num_bins: int, mean_budget: int = 4, n_min: int = 2, n_max: int = 12, ema: float = 0.2,
                 dual_lr: float = 0.05, initial_success: float = 0.5, price: float = 0.0) -> None:
        self.num_bins, self.mean_budget, self.n_min, self.n_max = num_bins, mean_budget, n_min, n_max
        self.ema, self.dual_lr, self.price = ema, dual_lr, price
        self.success = torch.full((num_bins,), float(initial_success), dtype=torch.float64)

    def update(self, bin_ids: Tensor, success_rates: Tensor) -> None:
        """EMA-update each present bin's success rate with this batch's mean per-rollout success."""
        means, present = bin_mean_losses(torch.as_tensor(success_rates, dtype=torch.float64), bin_ids,
                                         self.num_bins)
        self.success = torch.where(present, (1 - self.ema) * self.success + self.ema * means, self.success)

    @property
    def variances(self) -> Tensor:
        return self.success * (1 - self.success)

    def allocate(self, bin_ids: Tensor) -> Tensor:
        """Rollouts per prompt (long [P]) for prompts in these bins; the sum is exactly mean_budget * P."""
        return integer_allocation(self.variances[bin_ids.cpu()].sqrt(), self.mean_budget * len(bin_ids),
                                  self.n_min, self.n_max)

    def update_price(self, realised_mean: float) -> float:
        self.price = max(self.price + self.dual_lr * (realised_mean - self.mean_budget), 0.0)
        return self.price

    def state_dict(self) -> dict:
        return {"num_bins": self.num_bins, "mean_budget": self.mean_budget, "n_min": self.n_min,
                "n_max": self.n_max, "ema": self.ema, "dual_lr": self.dual_lr, "price": self.price,
                "success": self.success.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(state["num_bins"], state["mean_budget"], state["n_min"], state["n_max"], state["ema"],
                      state["dual_lr"], price=state["price"])
        self.success = torch.tensor(state["success"], dtype=torch.float64)


# ----------------------------------------------------------------------------------------------- XRPO

class XRPOAllocator:
    """XRPO's uncertainty-driven rollout allocator (Bamba et al. 2025, arXiv 2510.06672).

        h_q(n) = t_{1 - alpha/2, n-1} * s_q / sqrt(n)        (Student-t confidence half-width of the mean reward)
        Pi_q   = h_q(n_q) - h_q(n_q + 1) + bonus_lambda * sqrt(log(T) / n_q)
    Extra rollouts go one at a time to the highest-priority prompt (its s_q held fixed). Prompts with n < 2
    come first (h is undefined); zero-spread prompts have h = 0 and only the bonus (their remedy is ICL seeding).
    RECON (spec A6 + ERRATA): Pi = Delta + phi is quoted from a review; phi's form was not seen, so the UCB-style
    bonus is a placeholder (off by default). Checked: h(4) = 0.918693, h(5) = 0.716875 for rewards [1,0,0,1].
    """

    def __init__(self, alpha: float = 0.05, bonus_lambda: float = 0.0) -> None:
        self.alpha, self.bonus_lambda = alpha, bonus_lambda
        self.step = 0

    def half_width(self, std: float, n: int) -> float:
        if n < 2:
            return math.inf
        return student_t_quantile(1 - self.alpha / 2, n - 1) * std / math.sqrt(n)

    def priority(self, std: float, n: int) -> float:
        if n < 2:
            return math.inf
        bonus = self.bonus_lambda * math.sqrt(math.log(max(self.step, 1) + 1) / n)
        return self.half_width(std, n) - self.half_width(std, n + 1) + bonus

    def allocate(self, rewards_per_prompt: Sequence[Sequence[float]], extra_budget: int) -> list[int]:
        """How many EXTRA rollouts each prompt gets (sums to ``extra_budget``)."""
        self.step += 1
        counts = [len(r) for r in rewards_per_prompt]
        stds = [float(torch.tensor(r, dtype=torch.float64).std()) if len(r) > 1 else 0.0 for r in rewards_per_prompt]
        extra = [0] * len(counts)
        for _ in range(extra_budget if counts else 0):
            pri = [self.priority(s, n + e) for s, n, e in zip(stds, counts, extra)]
            extra[max(range(len(pri)), key=lambda i: (pri[i], -i))] += 1
        return extra

    def state_dict(self) -> dict:
        return {"alpha": self.alpha, "bonus_lambda": self.bonus_lambda, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(state["alpha"], state["bonus_lambda"])
        self.step = int(state["step"])


# ----------------------------------------------------------------------------------------------- ARRoL

def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Mann-Whitney AUC (ties count 1/2); None without both classes."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


class ARRoLPruner:
    """ARRoL early pruning (Xu et al. 2026, ACL; arXiv 2603.24840): from N partial rollouts of a prompt, keep G
    whose predicted success p_hat (a learned quality head's scores, computed by the caller) is balanced:

        S = argmin_{|S| = G} | mean_{i in S} p_hat_i - rho |,  ties -> the largest p_hat variance, then the
        lexicographically first subset
    Exhaustive over subsets when C(N, G) <= ``max_subsets``, else greedy (alternately take the highest / lowest
    p_hat that moves the mean toward rho). Random pruning (seeded, resumable) is used while the head is not
    trusted: fewer than ``min_history`` labelled outcomes, a running AUC below ``min_auc``, or all p_hat within
    ``degenerate_margin`` of 0 or of 1 (balance impossible).
    ``record(p_hat, outcomes)`` feeds finished rollouts' scores and verifier outcomes (window of ``history``).
    RECON (spec A8 + ERRATA): no code or method text was available; only rho = 0.5 comes from a summary. The
    rule above is the spec's reconstruction; tests check its worked example ({0.9, 0.85, 0.2, 0.05}).
    """

    def __init__(self, rho: float = 0.5, min_auc: float = 0.6, min_history: int = 32, history: int = 4096,
                 degenerate_margin: float = 0.05, max_subsets: int = 20000, seed: int = 0) -> None:
        self.rho, self.min_auc, self.min_history, self.history = rho, min_auc, min_history, history
        self.degenerate_margin, self.max_subsets, self.seed = degenerate_margin, max_subsets, seed
        self._scores: deque = deque(maxlen=history)
        self._labels: deque = deque(maxlen=history)
        self._rng = torch.Generator().manual_seed(seed)

    def record(self, p_hat: Sequence[float] | Tensor, outcomes: Sequence[int] | Tensor) -> None:
        self._scores.extend(float(s) for s in p_hat)
        self._labels.extend(int(bool(y)) for y in outcomes)

    @property
    def auc(self) -> float | None:
        return roc_auc(list(self._scores), list(self._labels))

    @property
    def head_trusted(self) -> bool:
        auc = self.auc
        return len(self._labels) >= self.min_history and auc is not None and auc >= self.min_auc

    def select(self, p_hat: Tensor, keep: int, use_head: bool | None = None) -> Tensor:
        """Keep mask (bool [N]) with exactly min(keep, N) survivors."""
        n = len(p_hat)
        keep = min(keep, n)
        p = [float(x) for x in p_hat]
        degenerate = all(x <= self.degenerate_margin for x in p) or all(x >= 1 - self.degenerate_margin for x in p)
        trusted = self.head_trusted if use_head is None else use_head
        mask = torch.zeros(n, dtype=torch.bool)
        if not trusted or degenerate:
            mask[torch.randperm(n, generator=self._rng)[:keep]] = True
            return mask
        if math.comb(n, keep) <= self.max_subsets:
            chosen = self._exhaustive(p, keep)
        else:
            chosen = self._greedy(p, keep)
        mask[list(chosen)] = True
        return mask

    def _exhaustive(self, p: list[float], keep: int) -> tuple[int, ...]:
        def key(subset: tuple[int, ...]) -> tuple[float, float]:
            vals = [p[i] for i in subset]
            mean = sum(vals) / keep
            var = sum((v - mean) ** 2 for v in vals) / keep
            return (round(abs(mean - self.rho), 9), -round(var, 12))
        return min(itertools.combinations(range(len(p)), keep), key=key)

    def _greedy(self, p: list[float], keep: int) -> list[int]:
        order = sorted(range(len(p)), key=lambda i: (-p[i], i))
        hi, lo, chosen, total = 0, len(order) - 1, [], 0.0
        while len(chosen) < keep:
            a, b = order[hi], order[lo]
            gap_a = abs((total + p[a]) / (len(chosen) + 1) - self.rho)
            gap_b = abs((total + p[b]) / (len(chosen) + 1) - self.rho)
            if gap_a <= gap_b:
                chosen.append(a)
                hi += 1
            else:
                chosen.append(b)
                lo -= 1
            total += p[chosen[-1]]
        return chosen

    def prune(self, p_hat: Tensor, group_ids: Tensor, keep_per_group: int) -> Tensor:
        """Keep mask over a flat batch: ``select`` applied to each group's rollouts."""
        mask = torch.zeros(len(p_hat), dtype=torch.bool)
        for g in torch.unique(group_ids):
            rows = torch.nonzero(group_ids == g).flatten()
            mask[rows] = self.select(p_hat[rows], keep_per_group)
        return mask

    def state_dict(self) -> dict:
        return {"rho": self.rho, "min_auc": self.min_auc, "min_history": self.min_history, "history": self.history,
                "degenerate_margin": self.degenerate_margin, "max_subsets": self.max_subsets, "seed": self.seed,
                "scores": list(self._scores), "labels": list(self._labels), "rng": self._rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(state["rho"], state["min_auc"], state["min_history"], state["history"],
                      state["degenerate_margin"], state["max_subsets"], state["seed"])
        self.record(state["scores"], state["labels"])
        self._rng.set_state(state["rng"])
