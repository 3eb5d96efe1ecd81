"""The GFCR "Control" step around the GRPO trainer: which prompts a step uses, how many rollouts each gets, which
sampled rollouts are kept. Glue between the trainer and the stateful controllers of :mod:`veripo.rollout.control_state`.

The trainer calls, once per fresh step (``P`` = prompts_per_step, ``G`` = group_size, budget ``B = len(prompts) G``):

    prompts = controller.select_prompts(step, candidates)     # candidates: the default sampler's rows for the step
    sizes   = controller.allocate(step, prompts)              # rollouts per prompt; sum <= B
    extra   = controller.refine(step, prompts, rewards, B - sum(sizes))   # phase 2 (``refines``: XRPO)
    weights = controller.advantage_weights(prompts)           # None, or a multiplier per prompt (GDRO Eq 16)
    metrics = controller.observe(prompts, rewards, correct)   # also on replayed steps: the state learns from both

Determinism: every decision is a pure function of ``(seed, step, state)`` and the state changes only in
``observe``, which runs on fresh and replayed steps alike. A resumed run (state from the checkpoint, then the
stored rollouts of the later steps observed again) therefore holds the very state the killed run had.

Controllers (``rollout.controller``):
* ``none``: the default sampler's prompts, ``G`` rollouts each (the plain GRPO path, byte for byte).
* ``gdro``: GDRO (Panaganti et al. 2026, arXiv 2601.19280). A ``DifficultyTracker`` bins prompts by a running
  any-of-k pass rate; Prompt-GDRO keeps an EMA of each bin's mean loss (here ``1 - accuracy`` of the prompt's
  rollouts, the spec's proxy; the paper uses the clipped-surrogate loss) and weights ``w_b = exp(eta S_b)``.
  Prompt selection draws a bin from ``q = (1 - gamma) w / sum w + gamma / B`` (restricted to bins that hold rows)
  and then a row uniformly inside it, without replacement within a step (the spec's curriculum form: per bin,
  not per prompt, so a few persistently failed prompts are drawn far more often than their share of the data).
  The paper itself does not resample; its Eq 16 multiplies advantages by ``min(w_b, w_max)``: enable with
  ``reweight_advantages: true`` (and ``sample_prompts: false`` for the paper's exact form).
  Rollout-GDRO gives each prompt ``n_i ~ sqrt(p_b (1 - p_b))`` rollouts (square-root law, Thm 4.2) with
  ``sum n_i = B`` exactly and ``min_group_size <= n_i <= max_group_size``; ``p_b`` is an EMA of the bin's
  per-rollout success. The shadow price is not used: the integer allocation meets the budget exactly.
* ``xrpo``: XRPO's hierarchical allocation (Bamba et al. 2025, arXiv 2510.06672): phase 1 samples
  ``min_group_size`` rollouts per prompt, phase 2 spends the rest of the budget one rollout at a time where the
  Student-t half-width of the prompt's mean reward shrinks most (``XRPOAllocator``), capped at
  ``max_group_size`` per prompt (overflow moves to the next-highest priority).

Pruning (``rollout.prune: arrol``) lives in :mod:`veripo.rollout.prune`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from veripo.algos.allocation import bin_mean_losses
from veripo.rollout.control_state import DifficultyTracker, PromptGDRO, RolloutGDRO, XRPOAllocator
from veripo.options import take_options

CONTROLLERS = ("none", "gdro", "xrpo")


def step_rng(seed: int, step: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, step, salt])


class Controller:
    """No control (``rollout.controller: none``): the default prompts, ``group_size`` rollouts each."""

    name = "none"
    refines = False  # whether a step has a second phase (``refine``) for the budget the first one left

    def __init__(self, rows: Sequence[Any], group_size: int, min_group_size: int, max_group_size: int,
                 seed: int = 0) -> None:
        if self.name != "none" and not 1 <= min_group_size <= group_size <= max_group_size:
            raise ValueError(f"rollout.controller={self.name} needs 1 <= min_group_size ({min_group_size}) <= "
                             f"group_size ({group_size}) <= max_group_size ({max_group_size})")
        self.rows = list(rows)
        self.group_size, self.min_group_size, self.max_group_size = group_size, min_group_size, max_group_size
        self.seed = seed

    def budget(self, prompts: Sequence[Any]) -> int:
        """Rollouts a step may train on: ``len(prompts) * group_size`` (budget-neutral allocation)."""
        return len(prompts) * self.group_size

    def select_prompts(self, step: int, candidates: Sequence[Any]) -> list[Any]:
        return list(candidates)

    def allocate(self, step: int, prompts: Sequence[Any]) -> list[int]:
        return [self.group_size] * len(prompts)

    def refine(self, step: int, prompts: Sequence[Any], rewards: Sequence[Sequence[float]], extra: int) -> list[int]:
        """Extra rollouts per prompt after a first phase whose rewards are ``rewards`` (sums to ``extra``)."""
        return [0] * len(prompts)

    def advantage_weights(self, prompts: Sequence[Any]) -> list[float] | None:
        return None

    def observe(self, prompts: Sequence[Any], rewards: Sequence[Sequence[float]],
                correct: Sequence[Sequence[bool]]) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"checkpoint holds state of controller {state.get('name')!r}, but the config asks for "
                             f"{self.name!r}: resume with the controller the run started with")


class GDROController(Controller):
    """Prompt-GDRO (selection, optional advantage weights) + Rollout-GDRO (allocation); see the module doc."""

    name = "gdro"
    TRACKER = ("edges", "window", "hysteresis", "unseen_pass_rate")
    PROMPT = ("eta", "gamma", "weight_max", "ema", "score_clip")
    FLAGS = ("sample_prompts", "allocate_rollouts", "reweight_advantages", "rollout_ema", "initial_success")

    def __init__(self, rows, group_size, min_group_size, max_group_size, seed=0, **kwargs: Any) -> None:
        super().__init__(rows, group_size, min_group_size, max_group_size, seed)
        kw = take_options(kwargs, self.TRACKER + self.PROMPT + self.FLAGS, "rollout.controller_kwargs (gdro)")
        self.sample_prompts = bool(kw.pop("sample_prompts", True))
        self.allocate_rollouts = bool(kw.pop("allocate_rollouts", True))
        self.reweight_advantages = bool(kw.pop("reweight_advantages", False))
        self.tracker = DifficultyTracker(**{k: kw[k] for k in self.TRACKER if k in kw})
        self.prompt_gdro = PromptGDRO(self.tracker.num_bins, **{k: kw[k] for k in self.PROMPT if k in kw})
        self.rollout_gdro = RolloutGDRO(self.tracker.num_bins, mean_budget=group_size, n_min=min_group_size,
                                        n_max=max_group_size, ema=kw.get("rollout_ema", 0.2),
                                        initial_success=kw.get("initial_success", 0.5))

    def bins(self, prompts: Sequence[Any]) -> torch.Tensor:
        return self.tracker.bins([p.problem_id for p in prompts])

    def bin_probs(self, bins: torch.Tensor) -> torch.Tensor:
        """q over bins, restricted to the bins present in ``bins`` and renormalised."""
        present = torch.bincount(bins, minlength=self.tracker.num_bins) > 0
        q = torch.where(present, self.prompt_gdro.probs, torch.zeros_like(self.prompt_gdro.probs))
        return q / q.sum()

    def selection_probs(self, rows: Sequence[Any] | None = None) -> list[float]:
        """Probability that one draw picks each row: ``q_b / |bin b|`` (the first draw of a step)."""
        rows = self.rows if rows is None else rows
        bins = self.bins(rows)
        q, counts = self.bin_probs(bins), torch.bincount(bins, minlength=self.tracker.num_bins)
        return [float(q[b] / counts[b]) for b in bins.tolist()]

    def select_prompts(self, step, candidates):
        if not self.sample_prompts or len(candidates) > len(self.rows):
            return list(candidates)
        rng = step_rng(self.seed, step, 1)
        bins = self.bins(self.rows).tolist()
        members: dict[int, list[int]] = {}
        for i, b in enumerate(bins):
            members.setdefault(b, []).append(i)
        q = self.prompt_gdro.probs.numpy()
        chosen = []
        for _ in range(len(candidates)):
            live = sorted(b for b, m in members.items() if m)
            p = np.array([q[b] for b in live])
            b = live[int(rng.choice(len(live), p=p / p.sum()))]
            chosen.append(members[b].pop(int(rng.integers(len(members[b])))))
        return [self.rows[i] for i in chosen]

    def allocate(self, step, prompts):
        if not self.allocate_rollouts:
            return super().allocate(step, prompts)
        return [int(n) for n in self.rollout_gdro.allocate(self.bins(prompts))]

    def advantage_weights(self, prompts):
        if not self.reweight_advantages:
            return None
        return self.prompt_gdro.advantage_multipliers(self.bins(prompts)).tolist()

    def observe(self, prompts, rewards, correct):
        ids = [p.problem_id for p in prompts]
        bins = self.tracker.bins(ids)  # the bins the prompts were drawn from / weighted by
        acc = torch.tensor([sum(map(float, c)) / max(1, len(c)) for c in correct], dtype=torch.float64)
        losses, present = bin_mean_losses(1.0 - acc, bins, self.tracker.num_bins)
        self.prompt_gdro.update(losses, present)
        self.rollout_gdro.update(bins, acc)
        self.tracker.update(ids, [any(c) for c in correct])
        all_bins = torch.bincount(self.bins(self.rows), minlength=self.tracker.num_bins)
        out = {f"gdro/q_bin{b}": float(v) for b, v in enumerate(self.prompt_gdro.probs)}
        out.update({f"gdro/rows_bin{b}": float(v) for b, v in enumerate(all_bins)})
        return out

    def state_dict(self):
        return {"name": self.name, "tracker": self.tracker.state_dict(), "prompt": self.prompt_gdro.state_dict(),
                "rollout": self.rollout_gdro.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.tracker.load_state_dict(state["tracker"])
        self.prompt_gdro.load_state_dict(state["prompt"])
        self.rollout_gdro.load_state_dict(state["rollout"])


def cap_allocation(extra: list[int], counts: Sequence[int], cap: int, priority) -> list[int]:
    """Move rollouts above ``cap`` (per prompt, ``counts + extra``) to the uncapped prompt with the highest
    ``priority(i, n)`` at its current count, one at a time (the total is kept while room remains)."""
    extra = list(extra)
    overflow = sum(max(0, c + e - cap) for c, e in zip(counts, extra))
    extra = [min(e, max(0, cap - c)) for c, e in zip(counts, extra)]
    for _ in range(overflow):
        room = [i for i, (c, e) in enumerate(zip(counts, extra)) if c + e < cap]
        if not room:
            break
        best = max(room, key=lambda i: (priority(i, counts[i] + extra[i]), -i))
        extra[best] += 1
    return extra


class XRPOController(Controller):
    """XRPO two-phase allocation: ``min_group_size`` each, then the remaining budget by priority."""

    name = "xrpo"
    refines = True

    def __init__(self, rows, group_size, min_group_size, max_group_size, seed=0, **kwargs: Any) -> None:
        super().__init__(rows, group_size, min_group_size, max_group_size, seed)
        if min_group_size < 2:
            raise ValueError("rollout.controller=xrpo needs rollout.min_group_size >= 2 (the Student-t half-width "
                             "needs two rewards)")
        self.allocator = XRPOAllocator(**take_options(kwargs, ("alpha", "bonus_lambda"), "rollout.controller_kwargs (xrpo)"))
        self.last: dict[str, float] = {}

    def allocate(self, step, prompts):
        return [self.min_group_size] * len(prompts)

    def refine(self, step, prompts, rewards, extra):
        self.allocator.step = step  # the bonus's clock is the GRPO step: identical after a resume
        counts = [len(r) for r in rewards]
        stds = [float(torch.tensor(r, dtype=torch.float64).std()) if len(r) > 1 else 0.0 for r in rewards]
        out = self.allocator.allocate(rewards, extra)
        return cap_allocation(out, counts, self.max_group_size, lambda i, n: self.allocator.priority(stds[i], n))

    def state_dict(self):
        return {"name": self.name, "allocator": self.allocator.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.allocator.load_state_dict(state["allocator"])


def build_controller(name: str, rows: Sequence[Any], group_size: int, min_group_size: int,
                     max_group_size: int, seed: int = 0, kwargs: dict[str, Any] | None = None) -> Controller:
    classes = {"none": Controller, "gdro": GDROController, "xrpo": XRPOController}
    if name not in classes:
        raise ValueError(f"rollout.controller must be one of {', '.join(CONTROLLERS)}, got {name!r}")
    if name == "none":
        if kwargs:
            raise ValueError(f"rollout.controller_kwargs {sorted(kwargs)} given but rollout.controller is none")
        return Controller(rows, group_size, min_group_size, max_group_size, seed)
    return classes[name](rows, group_size, min_group_size, max_group_size, seed, **(kwargs or {}))
