"""Sol-RL's exploration step in the rollout phase: a large candidate pool from a cheap engine, a contrastive subset.

    pool = CheapPool(cfg.rollout.cheap_pool, group_size)
    engine = pool.engine_for_step(policy_engine, step)  # int8 copy of the current policy (quantize=int8) or itself
    groups = generate_groups(engine, samples, [pool.pool_size] * n, params, batch)
    keep = pool.subset(scores["total"], group_ids)      # top keep_top + bottom keep_bottom per prompt

Sol-RL ("FP4 Explore, BF16 Train"; Li, Chen, Xue et al. 2026, arXiv 2604.06916; spec A11): the pool of
``pool_size`` candidates per prompt is sampled by a cheaper engine and scored; only the ``keep_top`` best and
``keep_bottom`` worst candidates of each prompt go on to the advantages and the update (``group_size`` of them by
default: half top, half bottom). On the CPU the cheap engine is a dynamically quantised int8 copy of the policy
(``veripo.rollout.quantized``), re-made from the policy's current weights at every fresh step; ``quantize: none``
samples the pool with the policy itself (the contrastive subset without the cheaper precision). The kept rollouts'
sampling log-probs are the cheap engine's, so the update recomputes their log-probs with the full-precision policy
and weights the loss by ``veripo.algos.truncated_is_weights`` (``is_cap``, ``is_level``, ``is_mode``).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Literal

import torch

from veripo.algos.sol_rl import IS_LEVELS, IS_MODES, pool_subset_mask
from veripo.config import doc, require


@dataclasses.dataclass
class CheapPoolConfig:
    pool_size: int = doc("Sol-RL: candidates sampled per prompt by the cheap engine; 0 = off (plain GRPO). The "
                         "paper: 96 candidates, 12 + 12 trained.", 0)
    keep_top: int | None = doc("Best candidates per prompt by reward that are trained (null = group_size // 2).", None)
    keep_bottom: int | None = doc("Worst candidates per prompt by reward that are trained (null = group_size - "
                                  "keep_top).", None)
    quantize: Literal["int8", "none"] = doc(
        "int8: the pool is sampled by a dynamically quantised int8 copy of the policy (CPU, hf engine); none: by "
        "the policy itself (only the contrastive subset).", "int8")
    keep_float: list[str] = doc("Module-name prefixes kept in float in the int8 copy (e.g. [lm_head]).",
                                default_factory=list)
    is_cap: float = doc("Truncated importance weight cap C: w = min(pi_full / pi_cheap, C) (TRL, Yao et al.: 3.0).", 3.0)
    is_level: Literal["token", "sequence"] = doc("Importance weight per token or per sequence.", "token")
    is_mode: Literal["truncate", "mask"] = doc("truncate: w = min(ratio, cap); mask: w = 0 where ratio > cap.",
                                               "truncate")

    @property
    def enabled(self) -> bool:
        return self.pool_size > 0

    def kept(self, group_size: int) -> tuple[int, int]:
        """(keep_top, keep_bottom) with the defaults filled in from ``group_size``."""
        top = group_size // 2 if self.keep_top is None else self.keep_top
        bottom = group_size - top if self.keep_bottom is None else self.keep_bottom
        return top, bottom

    def check(self, prefix: str = "") -> None:
        p = prefix
        require(self.pool_size >= 0, f"{p}pool_size", self.pool_size, "must be >= 0 (0 turns the cheap pool off)")
        for key in ("keep_top", "keep_bottom"):
            value = getattr(self, key)
            require(value is None or value >= 0, f"{p}{key}", value, "must be >= 0, or null for the default")
        require(self.quantize in ("int8", "none"), f"{p}quantize", self.quantize, "must be int8 or none")
        require(self.is_cap > 0, f"{p}is_cap", self.is_cap, "must be > 0 (e.g. 3.0)")
        require(self.is_level in IS_LEVELS, f"{p}is_level", self.is_level, f"must be one of {', '.join(IS_LEVELS)}")
        require(self.is_mode in IS_MODES, f"{p}is_mode", self.is_mode, f"must be one of {', '.join(IS_MODES)}")

    def check_against(self, group_size: int, prefix: str = "") -> None:
        """The rules that need the group size: the subset fits in the pool and has room for a baseline."""
        if not self.enabled:
            return
        top, bottom = self.kept(group_size)
        require(top + bottom >= 2, f"{prefix}keep_top", top,
                f"keep_top + keep_bottom = {top + bottom}: the trained subset needs >= 2 rollouts per prompt")
        require(self.pool_size >= top + bottom, f"{prefix}pool_size", self.pool_size,
                f"must be >= keep_top + keep_bottom = {top + bottom} (the trained subset is drawn from the pool)")


class CheapPool:
    """The pool's engine and its subset selection for one GRPO run (see the module doc)."""

    def __init__(self, cfg: CheapPoolConfig, group_size: int):
        self.cfg = cfg
        self.pool_size = cfg.pool_size
        self.keep_top, self.keep_bottom = cfg.kept(group_size)
        self.last_quantize_s = 0.0
        self._cheap: tuple[int, Any] | None = None  # (step, engine): the copy is made once per step

    def engine_for_step(self, engine: Any, step: int) -> Any:
        """The engine that samples step ``step``'s pool: an int8 copy of the policy ``engine`` samples, made from
        the current weights at the step's first generation call and reused by its later calls (a refill batch, a
        retry without an unreadable video); ``engine`` itself with ``quantize: none``."""
        if self.cfg.quantize == "none":
            self.last_quantize_s = 0.0
            return engine
        if self._cheap is not None and self._cheap[0] == step:
            return self._cheap[1]
        from veripo.rollout.quantized import QuantizationError, quantized_copy, quantized_linear_count

        t0 = time.perf_counter()
        copy = quantized_copy(engine.model, skip=tuple(self.cfg.keep_float))
        if quantized_linear_count(copy) == 0:
            raise QuantizationError("rollout.cheap_pool: the int8 copy has no quantised Linear layer (keep_float="
                                    f"{self.cfg.keep_float} keeps them all in float?), so it would not be cheaper")
        self.last_quantize_s = time.perf_counter() - t0
        self._cheap = (step, engine.with_model(copy))
        return self._cheap[1]

    def subset(self, totals: list[float], group_ids: torch.Tensor) -> torch.Tensor:
        """bool [N]: the candidates trained (``pool_subset_mask`` on the pool's total rewards)."""
        return pool_subset_mask(torch.tensor(totals, dtype=torch.float64), group_ids, self.keep_top, self.keep_bottom)

    @property
    def is_options(self) -> dict[str, Any]:
        """``truncated_is_weights``' options."""
        return {"cap": self.cfg.is_cap, "level": self.cfg.is_level, "mode": self.cfg.is_mode}
