"""``veripo sft``: supervised warm start on rows that carry a target ``response``.

    L = - (1 / #tokens) * sum over response tokens of log pi(y_t | video, question, y_<t)

With ``stop.val_file`` it evaluates greedy accuracy on held-out rows every ``stop.eval_every`` steps and
stops once the accuracy reaches ``stop.min_accuracy`` *and* every answer class (within its task type, when
rows carry a ``task``: ``direction/B``) reaches ``stop.min_class_accuracy`` — the learning probe's fix for a warm start that is confidently wrong on one
class, which leaves GRPO groups with zero reward spread (notes/learning-probe.md).

Several processes (``dist.backend`` ddp | deepspeed): each rank trains on ``rows[rank::W]`` of every step's rows
with the per-rank normaliser ``#tokens / W`` (``#tokens`` summed over ranks), so the averaged gradient is the
one-process gradient; the held-out check is split over ranks the same way; rank 0 writes metrics and the policy.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import torch

from veripo.cli import add_stage_arguments, run_stage
from veripo.config import doc, require, require_file
from veripo.data.schema import Sample, load_samples
from veripo.errors import ConfigError, DataError
from veripo import prompt_cache
from veripo.prompt_cache import PromptCache
from veripo.sequences import build_sequences, completion_logps
from veripo.train.distributed import DistConfig, all_gather_objects, all_reduce_sum, shard
from veripo.train.optim import OptimConfig
from veripo.train.policy_setup import ModelConfig
from veripo.train.run_config import RunConfig
from veripo.train.sampler import PromptSampler
from veripo.train.stage import TrainingStage
from veripo.video.cache import FrameCache
from veripo.video.sampling import VideoSampling

log = logging.getLogger(__name__)


@dataclasses.dataclass
class StopConfig:
    val_file: str | None = doc("Held-out rows for early stopping (null: train for all steps).", None)
    eval_every: int = doc("Evaluate every N steps.", 10)
    min_accuracy: float = doc("Stop when greedy val accuracy reaches this...", 0.7)
    min_class_accuracy: float = doc("...and every answer class reaches this.", 0.25)
    min_steps: int = doc("Never stop before this many steps.", 0)
    max_new_tokens: int = doc("Generation budget for the val check.", 64)

    def check(self, prefix: str = "") -> None:
        for key in ("eval_every", "max_new_tokens"):
            require(getattr(self, key) >= 1, f"{prefix}{key}", getattr(self, key), "must be >= 1")
        for key in ("min_accuracy", "min_class_accuracy"):
            require(0 <= getattr(self, key) <= 1, f"{prefix}{key}", getattr(self, key), "must be in [0, 1]")
        require(self.min_steps >= 0, f"{prefix}min_steps", self.min_steps, "must be >= 0")

    def check_inputs(self, prefix: str = "") -> None:
        require_file(self.val_file, f"{prefix}val_file", "held-out rows for early stopping", required=False)


@dataclasses.dataclass
class SFTConfig:
    MOVED_KEYS = {k: f"run.{k}" for k in ("out_dir", "seed", "steps")}

    model: ModelConfig = doc("The policy.", default_factory=ModelConfig)
    train_file: str = doc("JSONL rows with a 'response' field.", "")
    video: VideoSampling = doc("Frame sampling.", default_factory=VideoSampling)
    batch_size: int = doc("Rows per step.", 16)
    prompt_cache_mb: int = doc(prompt_cache.CONFIG_DOC, prompt_cache.DEFAULT_MB)
    optim: OptimConfig = doc("Optimiser.", default_factory=lambda: OptimConfig(lr=1e-3))
    stop: StopConfig = doc("Early stopping on held-out accuracy.", default_factory=StopConfig)
    run: RunConfig = doc("Run directory (final/ holds the policy), the most steps, checkpoints, seed.",
                         default_factory=lambda: RunConfig(out_dir="runs/sft", steps=300, save_every=0,
                                                           tensorboard=False))
    dist: DistConfig = doc("Multi-GPU: none | ddp | deepspeed (scripts/launch_multi_gpu.sh); batch_size must be a "
                           "multiple of the number of processes.", default_factory=DistConfig)

    def check(self, prefix: str = "") -> None:
        require(self.batch_size >= 1, f"{prefix}batch_size", self.batch_size, "must be >= 1 row per step")
        require(self.prompt_cache_mb >= 0, f"{prefix}prompt_cache_mb", self.prompt_cache_mb,
                "must be >= 0 MB (0 = no prompt cache)")
        require(self.run.steps is not None, f"{prefix}run.steps", self.run.steps, "give the most SFT steps (>= 1)")

    def check_inputs(self, prefix: str = "") -> None:
        require_file(self.train_file, f"{prefix}train_file", "JSONL rows with a 'response' field")


def greedy_scores(model, processor, rows: list[Sample], sampling: VideoSampling, cache: FrameCache,
                  max_new_tokens: int = 64, batch_size: int = 32) -> list[tuple[str, float]]:
    """``(answer class, greedy accuracy)`` per row: the class is the gold answer, within its task type when the
    row has one (``direction/B``), so a mix of tasks is not stopped while one of them is still at chance."""
    from veripo.generation.hf import generate_completions
    from veripo.generation.types import SamplingParams
    from veripo.rewards import accuracy_reward

    if not rows:
        return []
    outs, _ = generate_completions(model, processor, rows, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens),
                                   video_sampling=sampling, frame_cache=cache, batch_size=batch_size)
    return [(f"{row.extra['task']}/{row.answer}" if row.extra.get("task") else row.answer,
             accuracy_reward(group[0].text, row)) for row, group in zip(rows, outs)]


def summarise_accuracy(scored: list[tuple[str, float]]) -> tuple[float, dict[str, float]]:
    """Mean accuracy and the mean per gold answer class."""
    per_class: dict[str, list[float]] = {}
    for answer, acc in scored:
        per_class.setdefault(answer, []).append(acc)
    return (sum(a for _, a in scored) / max(1, len(scored)),
            {k: sum(v) / len(v) for k, v in sorted(per_class.items())})


class SFTTrainer(TrainingStage):
    """The supervised warm start on the shared stage skeleton (veripo/train/stage.py)."""

    name = "sft"

    def __init__(self, cfg: SFTConfig, model=None, processor=None):
        super().__init__(cfg, model, processor)
        self.rows = [r for r in load_samples(cfg.train_file, errors=self.errors) if r.response]
        if not self.rows:
            raise DataError(f"{cfg.train_file}: no rows with a 'response' to train on")
        self.val = load_samples(cfg.stop.val_file) if cfg.stop.val_file else []
        self.cache = FrameCache()
        self.prompts = PromptCache(self.processor, self.cache, cfg.video, max_bytes=cfg.prompt_cache_mb << 20)
        self.end_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        self._keys = {id(r): str(i) for i, r in enumerate(self.rows)}  # a row's prompt-cache key: its position
        self._targets: dict[str, list[int]] = {}
        self.sampler = PromptSampler(self.rows, cfg.batch_size, cfg.run.seed)
        self.setup_optimisation(cfg.run.steps)
        self._t0 = time.perf_counter()

    def check_world(self, world_size: int) -> None:
        if self.cfg.batch_size % world_size:
            raise ConfigError(f"batch_size {self.cfg.batch_size} is not a multiple of the {world_size} processes")

    def _target(self, key: str, row: Sample) -> list[int]:
        """The row's response tokens + ``<|im_end|>`` (encoded once per row)."""
        if key not in self._targets:
            self._targets[key] = self.tokenizer.encode(row.response, add_special_tokens=False) + [self.end_id]
        return self._targets[key]

    def step(self, step: int) -> dict[str, float]:
        cfg, te = self.cfg, self.train_engine
        rows = shard(self.sampler.batch(step), te.rank, te.world_size)
        keys = [self._keys[id(r)] for r in rows]
        prompts = self.prompts.batch(keys, rows)
        targets = [self._target(k, r) for k, r in zip(keys, rows)]
        seqs = build_sequences(prompts, list(range(len(rows))), targets, self.tokenizer.pad_token_id)
        self.model.train()
        n, mbs = len(seqs), cfg.optim.micro_batch_size
        # per-rank normaliser: all ranks' tokens / W, so DDP's gradient average is the one-process gradient
        total_tokens = all_reduce_sum(float(seqs.completion_mask.sum())) / te.world_size
        loss_value = 0.0
        starts = list(range(0, n, mbs))
        for i, s in enumerate(starts):
            part = seqs.slice(s, min(n, s + mbs))
            with te.accumulating(last=i == len(starts) - 1):
                logps, _ = completion_logps(te.model, part)
                loss = -(logps * part.completion_mask).sum() / total_tokens
                te.backward(loss)
            loss_value += float(loss.detach())
        record = {"loss": loss_value, "grad_norm": te.step(cfg.optim.grad_clip)}
        if self.val and (step + 1) % cfg.stop.eval_every == 0:
            scored = greedy_scores(te.unwrapped, self.processor, shard(self.val, te.rank, te.world_size,
                                                                       require_even=False),
                                   cfg.video, self.cache, cfg.stop.max_new_tokens)
            if te.world_size > 1:
                scored = [x for part in all_gather_objects(scored) for x in part]
            acc, per_class = summarise_accuracy(scored)
            record.update({"val_accuracy": acc, "val_min_class_accuracy": min(per_class.values())})
        return record

    def should_stop(self, step: int, metrics: dict[str, float]) -> bool:
        stop = self.cfg.stop
        return ("val_accuracy" in metrics and step + 1 >= stop.min_steps and metrics["val_accuracy"] >= stop.min_accuracy
                and metrics["val_min_class_accuracy"] >= stop.min_class_accuracy)

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{metrics['loss']:.3f}"}

    def summary(self, history: list[dict[str, float]], steps_done: int) -> dict[str, Any]:
        return {"steps": steps_done, "final_policy": str(self.out / "final"), "bad_rows": len(self.errors),
                "seconds": time.perf_counter() - self._t0,
                "val_accuracy": next((h["val_accuracy"] for h in reversed(history) if "val_accuracy" in h), None)}


def train_sft(cfg: SFTConfig, model=None, processor=None, resume: bool = False) -> dict[str, Any]:
    """Run ``veripo sft`` (see :class:`SFTTrainer`) and return its summary."""
    return SFTTrainer(cfg, model, processor).train(resume=resume)


HELP = "Supervised warm start on rows with a target 'response', with optional early stopping on val accuracy."


def add_arguments(parser) -> None:
    add_stage_arguments(parser, "run.out_dir")


def run(args) -> int:
    return run_stage(args, SFTConfig, "veripo.sft:SFTTrainer", "row")
