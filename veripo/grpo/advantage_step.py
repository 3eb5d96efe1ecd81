"""One GRPO step's rewards -> advantages, as the configured estimator wants them.

    result = step_advantages(estimator, cfg.algo, cfg.reward, scores, groups, prompt_weights)

* the reward tensor: the weighted total ``[N]``, or the components ``[N, K]`` with ``algo.decoupled_rewards``
  (GDPO, GD²PO normalise each component before weighting);
* inputs some estimators read, passed when their signature names them: ``reward_weights`` (decoupled),
  ``seq_logps`` (XRPO's novelty bonus: mean sampling log-prob of each rollout), ``correct`` (the rollouts' correctness, ``veripo.rewards.is_correct``);
* ``branch``: the trees' nodes (``veripo.rollout.tree.tree_layout``; flat groups are one-segment children of a
  virtual root), token-level advantages ``[N, T]`` and the mask of the tokens each row trains;
* DAPO dynamic sampling (``algo.dynamic_sampling``) masks out groups whose totals all agree;
* GDRO's Eq 16 multipliers ``min(w(bin), w_max)``, one per prompt, when the controller gives them.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from veripo.rewards import is_correct
from veripo.rollout.phase import group_index
from veripo.rollout.tree import tree_layout
from veripo.generation.types import Completion


@dataclasses.dataclass
class StepAdvantages:
    advantages: Tensor            # [N] per rollout, or [N, T] per token (branch)
    keep: Tensor                  # [N] bool: rows the update trains on
    train_mask: Tensor | None     # [N, T]: tokens each row trains (branch: a shared segment in one row only)
    metrics: dict[str, Any]       # the estimator's own metrics
    group_ids: Tensor             # [N] the prompt (group) of each rollout
    returns: Tensor | None = None # value-based estimators: the value heads' targets [N, T] or [N, T, K]


# what step_advantages fills in itself (never the user's to set), and its own option for tree estimators
COMPUTED_INPUTS = ("seq_logps", "correct", "parent_ids", "token_node_ids", "edge_logps", "values", "values2",
                   "response_mask")
TREE_OPTIONS = ("prob_weighted",)


def accepts(fn: Callable, name: str) -> bool:
    return name in inspect.signature(fn).parameters


def probe_estimator(estimator: Callable, kwargs: dict[str, Any], group_sizes: Sequence[int], components: int = 0):
    """The estimator on made-up rewards (0, 1, 0, 1, ...) for groups of ``group_sizes`` rollouts, with the inputs
    ``step_advantages`` would give it: the start-up check that ``algo.advantage_kwargs`` work, before any rollout.
    ``components`` > 0: decoupled rewards ``[N, components]``. Not for tree estimators (they need the trees)."""
    n = sum(group_sizes)
    group_ids = torch.arange(len(group_sizes)).repeat_interleave(torch.tensor(list(group_sizes)))
    rewards = (torch.arange(n) % 2).float()
    kwargs = dict(kwargs)
    if components:
        rewards = rewards[:, None].repeat(1, components)
        if accepts(estimator, "reward_weights"):
            kwargs.setdefault("reward_weights", [1.0] * components)
    if accepts(estimator, "seq_logps"):
        kwargs["seq_logps"] = -torch.arange(n, dtype=torch.float32) / n
    if accepts(estimator, "correct"):
        kwargs["correct"] = rewards.reshape(n, -1)[:, 0] >= 1.0
    kwargs.update(value_inputs(estimator, torch.zeros(n, 3, 2), torch.ones(n, 3)))
    return estimator(rewards, group_ids, **kwargs)


def value_inputs(estimator: Callable, values: Tensor | None, response_mask: Tensor | None) -> dict[str, Tensor]:
    """What a value-based estimator reads: the heads' values [N, T, K] as ``values`` (head 0) and ``values2``
    (head 1), and the completion mask [N, T]; nothing for the critic-free estimators."""
    if values is None or not accepts(estimator, "values"):
        return {}
    out = {"values": values[..., 0], "response_mask": response_mask}
    if accepts(estimator, "values2"):
        out["values2"] = values[..., 1]
    return out


def step_advantages(estimator: Callable, algo: Any, reward: Any, scores: dict[str, list[float]],
                    groups: Sequence[Sequence[Completion]], prompt_weights: Sequence[float] | None = None,
                    correct: Sequence[bool] | None = None, values: Tensor | None = None,
                    response_mask: Tensor | None = None) -> StepAdvantages:
    """See the module doc. ``scores``: reward name -> one value per rollout (``total`` included), rollouts in
    group order; ``algo`` / ``reward``: the GRPO config's ``AlgoConfig`` / ``RewardSpec``; ``correct``: per
    rollout (default: ``is_correct`` of the accuracy); ``values`` [N, T, K] and ``response_mask`` [N, T]: the
    value heads' estimates for ``ppo_gae`` / ``pdppo`` (veripo/grpo/critic.py)."""
    flat = [c for g in groups for c in g]
    group_ids = group_index([len(g) for g in groups])
    components = [k for k in scores if k != "total"]
    if algo.decoupled_rewards:
        rewards = torch.tensor([scores[k] for k in components], dtype=torch.float32).T
    else:
        rewards = torch.tensor(scores["total"], dtype=torch.float32)
    kwargs = dict(algo.advantage_kwargs)
    if algo.decoupled_rewards and accepts(estimator, "reward_weights"):
        kwargs.setdefault("reward_weights", [float(reward.weights[k]) for k in components])
    if accepts(estimator, "seq_logps"):
        kwargs["seq_logps"] = torch.tensor([sum(c.logps) / max(1, len(c.logps)) for c in flat])
    if accepts(estimator, "correct") and (correct is not None or "accuracy" in scores):
        kwargs["correct"] = torch.tensor(list(correct) if correct is not None
                                         else [is_correct(a) for a in scores["accuracy"]])
    train_mask = None
    if accepts(estimator, "parent_ids") and "parent_ids" not in kwargs:  # branch: the nodes of the trees
        layout = tree_layout(groups, max(1, max(len(c.token_ids) for c in flat)))
        if kwargs.pop("prob_weighted", False):
            kwargs["edge_logps"] = layout.edge_logps
        kwargs.update(parent_ids=layout.parent_ids, token_node_ids=layout.token_node_ids)
        result = estimator(layout.node_rewards(rewards), layout.group_ids, **kwargs)
        train_mask = layout.train_mask
    else:
        result = estimator(rewards, group_ids, **kwargs, **value_inputs(estimator, values, response_mask))
    keep = result.keep_mask.clone()
    if algo.dynamic_sampling:
        from veripo.algos.filters import dynamic_sampling_mask

        keep &= dynamic_sampling_mask(torch.tensor(scores["total"]), group_ids)
    advantages = result.advantages
    if prompt_weights is not None:  # GDRO Eq 16: A_ij <- A_ij min(w(bin(x_i)), w_max)
        per_rollout = torch.tensor(list(prompt_weights), dtype=advantages.dtype)[group_ids]
        advantages = advantages * per_rollout.view(-1, *([1] * (advantages.dim() - 1)))
    return StepAdvantages(advantages, keep, train_mask, dict(result.metrics), group_ids, returns=result.returns)


def row_advantages(advantages: Tensor, train_mask: Tensor | None = None) -> Tensor:
    """One advantage per rollout for the store: token-level advantages [N, T] averaged over the tokens the row
    trains (all of them without ``train_mask``)."""
    if advantages.dim() == 1:
        return advantages
    mask = torch.ones_like(advantages) if train_mask is None else train_mask.to(advantages.dtype)
    return (advantages * mask).sum(1) / mask.sum(1).clamp(min=1)
