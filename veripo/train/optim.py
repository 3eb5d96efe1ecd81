"""AdamW over the trainable parameters and a warmup + linear/cosine/constant learning-rate schedule.

    lr(step) = peak * step / warmup                                  for step < warmup
             = peak * (1 - p)            (linear)                    p = (step - warmup) / (total - warmup)
             = peak * 0.5 (1 + cos(pi p)) (cosine),  peak (constant)
The learning probe found linear decay to 0 gives stable endings for GRPO on a tiny model.
"""
from __future__ import annotations

import math
import warnings

import torch

import dataclasses

from veripo.config import doc, require

SCHEDULES = ("linear", "cosine", "constant")


@dataclasses.dataclass
class OptimConfig:
    lr: float = doc("Peak learning rate (VerIPO: 1e-6 GRPO, 5e-7 DPO on 7B; a 0.6M tiny model needs ~1e-4..1e-3).", 1e-6)
    weight_decay: float = doc("AdamW weight decay.", 0.0)
    betas: list[float] = doc("AdamW betas.", default_factory=lambda: [0.9, 0.999])
    eps: float = doc("AdamW epsilon (added to sqrt(v)); gradient elements far below it move by ~lr*g/eps "
                     "instead of ~lr*sign(g).", 1e-8)
    warmup_steps: int = doc("Linear warmup steps.", 0)
    schedule: str = doc("Learning-rate schedule after warmup: linear | cosine | constant.", "constant")
    grad_clip: float = doc("Clip the global gradient norm to this (0 = off).", 1.0)
    micro_batch_size: int = doc("Sequences per forward/backward; gradients accumulate up to the full batch.", 16)
    share_prompts: bool = doc("GRPO / DPO training forwards run each distinct prompt of a micro-batch once and its "
                              "completions on its key/value cache (the same log-probs and gradients; "
                              "veripo/prompt_sharing.py); off, or with gradient checkpointing, every row runs "
                              "prompt + completion.", True)

    def check(self, prefix: str = "") -> None:
        p = prefix
        require(self.lr > 0, f"{p}lr", self.lr, "the learning rate must be > 0 (VerIPO: 1e-6 GRPO, 5e-7 DPO on 7B)")
        require(self.weight_decay >= 0, f"{p}weight_decay", self.weight_decay, "must be >= 0")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"{p}betas", self.betas,
                "AdamW needs two betas in [0, 1), e.g. [0.9, 0.999]")
        require(self.warmup_steps >= 0, f"{p}warmup_steps", self.warmup_steps, "must be >= 0")
        require(self.schedule in SCHEDULES, f"{p}schedule", self.schedule, f"must be one of {' | '.join(SCHEDULES)}")
        require(self.grad_clip >= 0, f"{p}grad_clip", self.grad_clip, "must be >= 0 (0 = off)")
        require(self.micro_batch_size >= 1, f"{p}micro_batch_size", self.micro_batch_size,
                "must be >= 1 sequence per forward/backward")


def build_optimizer(model, cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas),
                             eps=cfg.eps)


def lr_factor(step: int, total_steps: int, warmup: int, schedule: str) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total_steps <= warmup:
        return 1.0
    p = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    if schedule == "linear":
        return max(0.0, 1.0 - p)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown schedule {schedule!r} ({' | '.join(SCHEDULES)})")


def build_scheduler(optimizer, cfg: OptimConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    lr_factor(0, total_steps, cfg.warmup_steps, cfg.schedule)  # validate the name early
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, cfg.warmup_steps, cfg.schedule))


def clip_and_step(model, optimizer, scheduler, grad_clip: float, guard=None, world_size: int = 1) -> float:
    """Clip, step, zero grads; returns the pre-clip gradient norm. With ``guard`` (a
    :class:`veripo.train.nonfinite.StepGuard`) a step it rejects (non-finite loss or norm) makes no update; the
    schedule still advances."""
    params = [p for p in model.parameters() if p.requires_grad]
    norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf")))
    if guard is not None and guard.should_skip(norm, world_size):
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose here
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
    else:
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm
