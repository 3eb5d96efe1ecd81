"""Which prompts each GRPO step uses: a deterministic function of (seed, step).

Epoch ``e`` is a permutation of the rows drawn from ``seed + e``; step ``s`` takes the next
``prompts_per_step`` rows of the concatenated epochs. Being a pure function of the step, a resumed run
picks exactly the prompts it would have picked, so nothing is repeated or skipped.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np

T = TypeVar("T")


class PromptSampler:
    def __init__(self, rows: Sequence[T], prompts_per_step: int, seed: int = 0):
        if not rows:
            raise ValueError("no training rows to sample prompts from")
        self.rows = list(rows)
        self.per_step = prompts_per_step
        self.seed = seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms[epoch] = np.random.default_rng(self.seed + epoch).permutation(len(self.rows))
        return self._perms[epoch]

    def batch(self, step: int) -> list[T]:
        """Rows for GRPO step ``step`` (0-based)."""
        n = len(self.rows)
        start = step * self.per_step
        out = []
        for pos in range(start, start + self.per_step):
            epoch, idx = divmod(pos, n)
            out.append(self.rows[int(self._perm(epoch)[idx])])
        return out

    def epoch_of(self, step: int) -> float:
        return step * self.per_step / len(self.rows)
