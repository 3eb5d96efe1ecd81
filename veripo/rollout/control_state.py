"""The stateful GDRO and XRPO controllers (state_dict / load_state_dict, so a resumed run continues exactly), used
by the Control step's wrappers in :mod:`veripo.rollout.control`; their arithmetic is pure functions in
:mod:`veripo.algos.allocation`.

* ``DifficultyTracker``: running pass@k per prompt over a window, difficulty bins with hysteresis (GDRO Eqs 10-11).
* ``PromptGDRO``: per-bin EMA loss -> multiplicative weights -> advantage multipliers and a sampling mix (GDRO).
* ``RolloutGDRO``: budget-neutral rollouts per prompt from the square-root law + a shadow price (GDRO).
* ``XRPOAllocator``: spend extra rollouts where the Student-t confidence half-width shrinks most (XRPO).
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any, Sequence

import torch
from torch import Tensor

from veripo.algos.allocation import bin_mean_losses, integer_allocation, student_t_quantile


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
