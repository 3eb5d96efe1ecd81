"""Which prompts each GRPO step uses: a deterministic function of (seed, step).

Epoch ``e`` is a permutation of the rows drawn from ``seed + e``; step ``s`` takes the next
``prompts_per_step`` rows of the concatenated epochs. Being a pure function of the step, a resumed run
picks exactly the prompts it would have picked, so nothing is repeated or skipped.

A step never holds a row twice (that would write duplicate rollout ids): a step that straddles two epochs skips
the rows it already has and reads on into the next epoch; ``prompts_per_step`` larger than the number of rows
is clamped to it, with a warning.
"""
from __future__ import annotations

import logging
from typing import Sequence, TypeVar

import numpy as np

T = TypeVar("T")
log = logging.getLogger(__name__)


class PromptSampler:
    def __init__(self, rows: Sequence[T], prompts_per_step: int, seed: int = 0):
        if not rows:
            raise ValueError("no training rows to sample prompts from")
        self.rows = list(rows)
        if prompts_per_step > len(self.rows):
            log.warning("prompts_per_step=%d is more than the %d usable rows: using %d prompts per step (a step "
                        "never draws a prompt twice)", prompts_per_step, len(self.rows), len(self.rows))
        self.per_step = min(prompts_per_step, len(self.rows))
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
        picked: list[int] = []
        pos = start
        while len(picked) < self.per_step:  # at most two epochs are read: per_step <= n
            epoch, idx = divmod(pos, n)
            row = int(self._perm(epoch)[idx])
            if row not in picked:
                picked.append(row)
            pos += 1
        return [self.rows[i] for i in picked]

    def refill(self, step: int, round_: int, taken: Sequence[T]) -> list[T]:
        """Rows for refill round ``round_`` (>= 1) of step ``step`` (DAPO dynamic sampling): the first ``per_step``
        rows, not in ``taken`` (the step's rows so far), of a permutation drawn from ``(seed, step, round_)``. A pure
        function of its arguments, as :meth:`batch` is; fewer rows (or none) when the data runs out."""
        held = {id(r) for r in taken}
        perm = np.random.default_rng([self.seed, step, round_]).permutation(len(self.rows))
        return [self.rows[int(i)] for i in perm if id(self.rows[int(i)]) not in held][: self.per_step]

    def epoch_of(self, step: int) -> float:
        return step * self.per_step / len(self.rows)
