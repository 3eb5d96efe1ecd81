"""The ``run`` section every training stage's config has (sft, grpo, dpo): where it writes, how long it runs."""
from __future__ import annotations

import dataclasses

from veripo.config import doc, require


@dataclasses.dataclass
class RunConfig:
    """Where a stage writes and how long it runs (the same section in sft, grpo and dpo configs)."""

    out_dir: str = doc("Run directory: metrics.jsonl, checkpoints/, final/ and the stage's own files.", "runs/stage")
    steps: int | None = doc("Optimiser steps. grpo: one rollout batch each; sft: the most (early stopping may end "
                            "sooner); dpo: null = epochs * training pairs / batch_size.", None)
    save_every: int = doc("Checkpoint every N steps (0 = only the final policy).", 20)
    keep_last: int = doc("Checkpoints kept on disk.", 2)
    seed: int = doc("Seed for data order, sampling and init.", 0)
    tensorboard: bool = doc("Also log to TensorBoard (out_dir/tensorboard).", True)
    time_limit_s: float | None = doc("Stop after the step during which this many seconds of training have passed "
                                     "(counted across --resume; the final policy is saved as usual). null = run "
                                     "every step.", None)
    time_limit_clock: str = doc("What time_limit_s counts: wall (elapsed seconds) | cpu (this process's CPU seconds, "
                                "all threads: fair between runs on a shared machine).", "wall")

    def check(self, prefix: str = "") -> None:
        require(self.steps is None or self.steps >= 1, f"{prefix}steps", self.steps, "must be >= 1")
        require(self.save_every >= 0, f"{prefix}save_every", self.save_every, "must be >= 0 (0 = only at the end)")
        require(self.keep_last >= 1, f"{prefix}keep_last", self.keep_last, "must be >= 1")
        require(self.time_limit_s is None or self.time_limit_s > 0, f"{prefix}time_limit_s", self.time_limit_s,
                "must be > 0 seconds, or null for no limit")
        require(self.time_limit_clock in ("wall", "cpu"), f"{prefix}time_limit_clock", self.time_limit_clock,
                "must be wall or cpu")

    def clock(self) -> float:
        """Seconds on the clock ``time_limit_s`` counts."""
        import time

        return time.process_time() if self.time_limit_clock == "cpu" else time.perf_counter()
