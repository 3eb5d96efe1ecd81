"""Non-finite guard: NaN / inf never reach the weights, and never reach a saved model.

* :class:`StepGuard` (wired into :meth:`veripo.train.distributed.TrainEngine.step` through
  :func:`veripo.train.optim.clip_and_step`): a step whose loss (any
  micro-batch's) or pre-clip gradient norm is NaN/inf is skipped -- gradients zeroed, no optimiser update (the
  learning-rate schedule still advances, as AMP's GradScaler does on overflow, so the schedule stays a function
  of the step) -- with a warning and a counter (:attr:`StepGuard.skipped`); after ``max_consecutive``
  (default :data:`DEFAULT_MAX_CONSECUTIVE`, env ``VERIPO_MAX_NONFINITE_SKIPS``) skipped steps in a row the run
  stops with :class:`NonFiniteError` (the learning rate is too high, or the data / reward produces NaN).
  Several processes agree on the decision (a max-reduce of the flag), so no rank updates while another skips.
* :func:`check_finite_weights` (called by :func:`veripo.models.lora.save_policy`, hence by every checkpoint
  and final save): refuses to save weights with a NaN/inf value or of a magnitude no trained network has
  (``|w| > max_abs``, default :data:`DEFAULT_MAX_ABS`, env ``VERIPO_MAX_ABS_WEIGHT``: an overflowed update such as
  ``lr=1e10``, which would make every later forward NaN), naming the first such parameter.

Under ``dist.backend=deepspeed`` the optimiser step belongs to DeepSpeed (``engine.step()`` clips, steps and
zeroes the gradients in one call, and ZeRO computes the norm inside it), so the decision is settled afterwards
(:meth:`StepGuard.after_external_step`, from :meth:`veripo.train.distributed.TrainEngine.step`): DeepSpeed's
ZeRO-1/2 optimiser checks the gradients for inf/NaN before its step when fp16 is on, or bf16 with
``bf16.check_grad_overflow`` (true by default in current DeepSpeed; the shipped zero2.json is bf16), and then
skips the update and zeroes the gradients itself (``engine.was_step_applied()`` is false): that is a real skip,
counted, and the schedule is advanced by hand (DeepSpeed does not step its scheduler on a skipped step). Where
DeepSpeed has no such check (ZeRO-3 with bf16 or fp32 -- the shipped zero3.json --, ZeRO-1/2 in fp32, no
ZeRO) the non-finite update is already in the weights: the run stops at once with :class:`NonFiniteError`,
before a later step or a save builds on them. fp16 loss-scale overflows (DeepSpeed's dynamic loss scaling,
normal in the first steps) are left to DeepSpeed and not counted.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Iterable

import torch

from veripo.errors import VeripoError
from veripo.models.weights_check import (DEFAULT_MAX_ABS, NonFiniteError, _env_number,  # noqa: F401
                                         check_finite_weights, first_nonfinite)

log = logging.getLogger(__name__)

DEFAULT_MAX_CONSECUTIVE = 5


class StepGuard:
    """Skip optimiser steps whose loss or gradient norm is not finite; stop after too many in a row."""

    def __init__(self, max_consecutive: int | None = None):
        self.max_consecutive = int(max_consecutive if max_consecutive is not None
                                   else _env_number("VERIPO_MAX_NONFINITE_SKIPS", DEFAULT_MAX_CONSECUTIVE))
        self.skipped = 0        # steps skipped in all
        self.consecutive = 0    # steps skipped since the last good one
        self.steps = 0          # steps seen
        self._bad_loss: float | None = None
        self.last_bad_loss: float | None = None  # the non-finite loss of the step just decided, if any

    def observe_loss(self, loss: torch.Tensor | float) -> None:
        """Called with each micro-batch's loss before its backward."""
        value = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
        if not math.isfinite(value) and self._bad_loss is None:
            self._bad_loss = value

    def should_skip(self, grad_norm: float, world_size: int = 1) -> bool:
        """Decide for the step about to be taken (``grad_norm``: pre-clip); counts, warns, raises after
        ``max_consecutive`` skips in a row."""
        self.steps += 1
        bad = self._bad_loss is not None or not math.isfinite(float(grad_norm))
        if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([float(bad)], device=_comm_device())
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            bad = bool(flag.item())
        loss, self._bad_loss = self._bad_loss, None
        self.last_bad_loss = loss
        if not bad:
            self.consecutive = 0
            return False
        self.skipped += 1
        self.consecutive += 1
        what = f"loss {loss}" if loss is not None else f"gradient norm {float(grad_norm)}"
        log.warning("non-finite %s at optimiser step %d: update skipped, gradients zeroed (%d skipped so far, "
                    "%d in a row)", what, self.steps, self.skipped, self.consecutive)
        if self.max_consecutive > 0 and self.consecutive >= self.max_consecutive:
            raise NonFiniteError(f"{self.consecutive} optimiser steps in a row had a non-finite {what.split()[0]} "
                                 f"({what}): stopping; lower optim.lr or check the data and rewards (the last good "
                                 "checkpoint is kept)")
        return True

    def after_external_step(self, grad_norm: float, applied: bool, world_size: int = 1) -> bool:
        """Settle a step an outside optimiser (DeepSpeed) already took, as :meth:`should_skip` would have decided
        it: returns ``True`` for a non-finite step the optimiser did not apply (skipped, counted; the caller
        advances the schedule). A non-finite step that *was* applied cannot be undone: :class:`NonFiniteError`
        at once, before any later step or save builds on those weights. ``applied`` must agree on all ranks
        (DeepSpeed all-reduces its overflow flag)."""
        skip = self.should_skip(grad_norm, world_size)
        if skip and applied:
            what = "loss" if self.last_bad_loss is not None else "gradient norm"
            value = self.last_bad_loss if self.last_bad_loss is not None else float(grad_norm)
            raise NonFiniteError(f"the optimiser applied an update with a non-finite {what} {value} (step "
                                 f"{self.steps}): the weights are no longer trustworthy, stopping (the last good "
                                 "checkpoint is kept); under DeepSpeed use bf16 with ZeRO-1/2 "
                                 "(bf16.check_grad_overflow) or fp16, whose overflow check skips such steps")
        return skip

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "consecutive": self.consecutive, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped, self.consecutive = int(state.get("skipped", 0)), int(state.get("consecutive", 0))
        self.steps = int(state.get("steps", 0))


def _comm_device() -> torch.device:
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
