"""Several rewards with weights: the per-component scores and their weighted total.

    total_i = sum_k  w_k * r_k(response_i, sample_i)

Each component is returned separately so that decoupled estimators (GDPO / GD²PO, spec/algorithms.md
A3-A4) can normalise them one by one. Default: accuracy 1.0 + format 0.5, i.e. VerIPO / MM-EUREKA's
``r = r_a + r_f`` with ``r_f in {0, 0.5}`` (spec §4).

A component value that is NaN or infinite (a user reward dividing by zero, ...) is replaced by 0 with a warning
naming the reward and the rollout, and counted in :data:`NONFINITE_REWARDS` (reward name -> count), so one bad
value neither crashes the step nor loses its rollouts.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from typing import Any

from veripo.config import ConfigError, doc, require
from veripo.rewards.registry import resolve_reward

log = logging.getLogger(__name__)
NONFINITE_REWARDS: Counter = Counter()  # reward name -> non-finite values replaced by 0 (this process)


REWARD_INPUTS = ("response", "sample", "responses", "samples")  # what compute_rewards passes to every reward


@dataclasses.dataclass
class RewardSpec:
    weights: dict[str, float] = doc(
        "Reward name -> weight. Names: accuracy, format, length, any registered name, or an import path "
        "'package.module:function'. A weight of 0 still computes and logs the component.",
        default_factory=lambda: {"accuracy": 1.0, "format": 0.5})
    kwargs: dict[str, dict] = doc(
        "Reward name -> keyword arguments for that function, e.g. {length: {min_tokens: 320, max_tokens: 512}}.",
        default_factory=dict)

    def __post_init__(self) -> None:
        self.check()

    def check(self, prefix: str = "") -> None:
        """Known rewards with finite weights, and each one's kwargs among its keyword options (user functions that
        take ``**kwargs`` are not checked)."""
        from veripo.options import check_options, takes_any_keyword

        p = prefix
        require(bool(self.weights), f"{p}weights", self.weights, "name at least one reward, e.g. {accuracy: 1.0}")
        unknown = sorted(set(self.kwargs) - set(self.weights))
        require(not unknown, f"{p}kwargs", self.kwargs, f"given for {unknown}, which are not in {p}weights "
                f"{sorted(self.weights)}")
        for name, weight in self.weights.items():
            require(isinstance(weight, (int, float)) and math.isfinite(weight), f"{p}weights.{name}", weight,
                    "must be a finite number")
            try:
                fn = resolve_reward(name)  # fail at config time, naming the bad reward
            except ConfigError as e:
                raise ConfigError(f"{p}weights: {e}") from None
            if not takes_any_keyword(fn):
                check_options(self.kwargs.get(name) or {}, [fn], f"{p}kwargs.{name}", computed=REWARD_INPUTS)


def _check(values: list[Any], name: str, n: int, ids: list[str]) -> list[float]:
    if len(values) != n:
        raise ValueError(f"reward {name!r} returned {len(values)} values for {n} responses")
    out, bad = [], []
    for i, v in enumerate(values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"reward {name!r} returned {v!r} for response {i}: not a number") from None
        if not math.isfinite(f):
            bad.append(f"{ids[i]}={f}")
            f = 0.0
        out.append(f)
    if bad:
        NONFINITE_REWARDS[name] += len(bad)
        log.warning("reward %r returned %d non-finite value(s), replaced by 0 (%d so far): %s", name, len(bad),
                    NONFINITE_REWARDS[name], ", ".join(bad[:8]) + (" ..." if len(bad) > 8 else ""))
    return out


def _ids(samples: list[Any], ids: list[str] | None) -> list[str]:
    """Names for the warning: the given rollout ids, else ``problem_id#i``."""
    if ids is not None:
        return [str(i) for i in ids]
    return [f"{s.problem_id}#{i}" for i, s in enumerate(samples)]


def compute_rewards(responses: list[str], samples: list[Any], spec: RewardSpec | None = None,
                    ids: list[str] | None = None, token_counts: list[int] | None = None) -> dict[str, list[float]]:
    """Score ``responses[i]`` against ``samples[i]`` (a :class:`~veripo.data.schema.Sample`) with every reward of ``spec``;
    ``ids`` (rollout ids) name the rollouts in the non-finite warning; ``token_counts[i]``: the response's sampled
    token count, for rewards that read it (``uses_token_count``).

    Returns ``{name: [r_0, ..., r_{n-1}], ..., "total": [weighted sum]}``.
    """
    spec = spec or RewardSpec()
    if len(responses) != len(samples):
        raise ValueError(f"{len(responses)} responses but {len(samples)} samples")
    n = len(responses)
    out: dict[str, list[float]] = {}
    names = _ids(list(samples), ids)
    total = [0.0] * n
    for name, weight in spec.weights.items():
        fn = resolve_reward(name)
        kw = spec.kwargs.get(name, {})
        if getattr(fn, "batched", False):
            values = list(fn(list(responses), list(samples), **kw))
        elif getattr(fn, "uses_token_count", False) and token_counts is not None:
            values = [fn(r, s, token_count=c, **kw) for r, s, c in zip(responses, samples, token_counts)]
        else:
            values = [fn(r, s, **kw) for r, s in zip(responses, samples)]
        vals = _check(values, name, n, names)
        out[name] = vals
        total = [t + float(weight) * v for t, v in zip(total, vals)]
    out["total"] = total
    return out
