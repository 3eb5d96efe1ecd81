"""Several rewards with weights: the per-component scores and their weighted total.

    total_i = sum_k  w_k * r_k(response_i, sample_i)

Each component is returned separately so that decoupled estimators (GDPO / GD²PO, spec/algorithms.md
A3-A4) can normalise them one by one. Default: accuracy 1.0 + format 0.5, i.e. VerIPO / MM-EUREKA's
``r = r_a + r_f`` with ``r_f in {0, 0.5}`` (spec §4).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from veripo.config import doc
from veripo.rewards.registry import resolve_reward


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
        unknown = set(self.kwargs) - set(self.weights)
        if unknown:
            raise ValueError(f"reward kwargs given for {sorted(unknown)} which are not in weights {sorted(self.weights)}")
        for name in self.weights:
            resolve_reward(name)  # fail at config time, naming the bad reward


def _check(values: list[Any], name: str, n: int) -> list[float]:
    if len(values) != n:
        raise ValueError(f"reward {name!r} returned {len(values)} values for {n} responses")
    out = []
    for i, v in enumerate(values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"reward {name!r} returned {v!r} for response {i}: not a number") from None
        if not math.isfinite(f):
            raise ValueError(f"reward {name!r} returned {f} for response {i}: not finite")
        out.append(f)
    return out


def compute_rewards(responses: list[str], samples: list[Any], spec: RewardSpec | None = None,
                    token_counts: list[int] | None = None) -> dict[str, list[float]]:
    """Score ``responses[i]`` against ``samples[i]`` (Sample or dict row) with every reward of ``spec``;
    ``token_counts[i]``: the response's sampled token count, for rewards that read it (``uses_token_count``).

    Returns ``{name: [r_0, ..., r_{n-1}], ..., "total": [weighted sum]}``.
    """
    spec = spec or RewardSpec()
    if len(responses) != len(samples):
        raise ValueError(f"{len(responses)} responses but {len(samples)} samples")
    n = len(responses)
    out: dict[str, list[float]] = {}
    total = [0.0] * n
    for name, weight in spec.weights.items():
        fn = resolve_reward(name)
        kw = spec.kwargs.get(name, {})
        if getattr(fn, "batched", False):
            values = list(fn(list(responses), list(samples), **kw))
        elif getattr(fn, "uses_token_count", False) and token_counts is not None:
            values = [fn(r, s, token_count=n, **kw) for r, s, n in zip(responses, samples, token_counts)]
        else:
            values = [fn(r, s, **kw) for r, s in zip(responses, samples)]
        vals = _check(values, name, n)
        out[name] = vals
        total = [t + float(weight) * v for t, v in zip(total, vals)]
    out["total"] = total
    return out
