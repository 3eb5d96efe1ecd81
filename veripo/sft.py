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
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from veripo.cli import add_config_arguments, config_from_args
from veripo.config import doc, save_config
from veripo.data.schema import Sample, load_samples
from veripo.io_utils import atomic_write_json
from veripo.rollout.prompt_batch import build_prompt_batch
from veripo.rollout.sampler import PromptSampler
from veripo.sequences import build_sequences, completion_logps
from veripo.train.distributed import (DistConfig, TrainEngine, all_gather_objects, all_reduce_mean, all_reduce_sum,
                                      init_distributed, shard)
from veripo.train.metrics import MetricsLogger, progress
from veripo.train.optim import OptimConfig, build_optimizer, build_scheduler
from veripo.train.policy_setup import ModelConfig, load_trainable_policy
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


@dataclasses.dataclass
class SFTConfig:
    model: ModelConfig = doc("The policy.", default_factory=ModelConfig)
    train_file: str = doc("JSONL rows with a 'response' field.", "")
    video: VideoSampling = doc("Frame sampling.", default_factory=VideoSampling)
    batch_size: int = doc("Rows per step.", 16)
    steps: int = doc("Maximum steps.", 300)
    optim: OptimConfig = doc("Optimiser.", default_factory=lambda: OptimConfig(lr=1e-3))
    stop: StopConfig = doc("Early stopping on held-out accuracy.", default_factory=StopConfig)
    out_dir: str = doc("Output directory (final/ holds the policy).", "runs/sft")
    seed: int = doc("Seed.", 0)
    dist: DistConfig = doc("Multi-GPU: none | ddp | deepspeed (scripts/launch_multi_gpu.sh); batch_size must be a "
                           "multiple of the number of processes.", default_factory=DistConfig)


def greedy_scores(model, processor, rows: list[Sample], sampling: VideoSampling, cache: FrameCache,
                  max_new_tokens: int = 64, batch_size: int = 32) -> list[tuple[str, float]]:
    """``(answer class, greedy accuracy)`` per row: the class is the gold answer, within its task type when the
    row has one (``direction/B``), so a mix of tasks is not stopped while one of them is still at chance."""
    from veripo.rewards import accuracy_reward
    from veripo.rollout.hf_engine import HFEngine

    if not rows:
        return []
    engine = HFEngine(model, processor, sampling, cache, batch_size=batch_size)
    outs = engine.generate(rows, n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    return [(f"{row.extra['task']}/{row.answer}" if row.extra.get("task") else row.answer,
             accuracy_reward(group[0].text, row)) for row, group in zip(rows, outs)]


def summarise_accuracy(scored: list[tuple[str, float]]) -> tuple[float, dict[str, float]]:
    """Mean accuracy and the mean per gold answer class."""
    per_class: dict[str, list[float]] = {}
    for answer, acc in scored:
        per_class.setdefault(answer, []).append(acc)
    return (sum(a for _, a in scored) / max(1, len(scored)),
            {k: sum(v) / len(v) for k, v in sorted(per_class.items())})


def greedy_accuracy(model, processor, rows: list[Sample], sampling: VideoSampling, cache: FrameCache,
                    max_new_tokens: int = 64, batch_size: int = 32) -> tuple[float, dict[str, float]]:
    """Greedy accuracy over ``rows`` and per gold answer class."""
    return summarise_accuracy(greedy_scores(model, processor, rows, sampling, cache, max_new_tokens, batch_size))


def train_sft(cfg: SFTConfig, model=None, processor=None) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    if cfg.dist.backend != "none":  # one process per GPU: each loads the policy onto its own device
        info = init_distributed(cfg.dist.timeout_minutes)
        if cfg.model.device == "auto" and info.device.type == "cuda":
            cfg.model.device = str(info.device)
        if cfg.batch_size % info.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} is not a multiple of the {info.world_size} processes")
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        model, processor = load_trainable_policy(cfg.model)
    errors: list[str] = []
    rows = [r for r in load_samples(cfg.train_file, errors=errors) if r.response]
    if not rows:
        raise ValueError(f"{cfg.train_file}: no rows with a 'response' to train on")
    val = load_samples(cfg.stop.val_file) if cfg.stop.val_file else []
    cache = FrameCache()
    tok = processor.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    sampler = PromptSampler(rows, cfg.batch_size, cfg.seed)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.steps)
    engine = TrainEngine.create(model, optimizer, scheduler, cfg.dist, grad_clip=cfg.optim.grad_clip,
                                micro_batch_size=cfg.optim.micro_batch_size)
    rank, world = engine.rank, engine.world_size
    if engine.is_main:
        save_config(cfg, out / "config.yaml")
    logger = MetricsLogger(out, tensorboard=False) if engine.is_main else None
    bar = progress(cfg.steps, "sft") if engine.is_main else None
    history: list[dict[str, Any]] = []
    stopped_at = cfg.steps
    t_start = time.perf_counter()
    try:
        for step in range(cfg.steps):
            batch_rows = shard(sampler.batch(step), rank, world)
            prompts = build_prompt_batch(processor, batch_rows, cache, cfg.video)
            targets = [tok.encode(r.response, add_special_tokens=False) + [eos] for r in batch_rows]
            seqs = build_sequences(prompts, list(range(len(batch_rows))), targets, tok.pad_token_id)
            model.train()
            n, mbs = len(seqs), cfg.optim.micro_batch_size
            # per-rank normaliser: all ranks' tokens / W, so DDP's gradient average is the one-process gradient
            total_tokens = all_reduce_sum(float(seqs.completion_mask.sum())) / world
            loss_value = 0.0
            starts = list(range(0, n, mbs))
            for i, s in enumerate(starts):
                part = seqs.slice(s, min(n, s + mbs))
                with engine.accumulating(last=i == len(starts) - 1):
                    logps, _ = completion_logps(engine.model, part)
                    loss = -(logps * part.completion_mask).sum() / total_tokens
                    engine.backward(loss)
                loss_value += float(loss.detach())
            grad_norm = engine.step(cfg.optim.grad_clip)
            lr = scheduler.get_last_lr()[0] if engine.backend != "deepspeed" else engine.optimizer.param_groups[0]["lr"]
            record: dict[str, Any] = {"loss": loss_value, "grad_norm": grad_norm}
            record = {**(all_reduce_mean(record) if world > 1 else record), "lr": lr}
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.3f}")
            stop = False
            if val and (step + 1) % cfg.stop.eval_every == 0:
                scored = greedy_scores(engine.unwrapped, processor, shard(val, rank, world, require_even=False),
                                       cfg.video, cache, cfg.stop.max_new_tokens)
                if world > 1:
                    scored = [x for part in all_gather_objects(scored) for x in part]
                acc, per_class = summarise_accuracy(scored)
                record.update({"val_accuracy": acc, "val_min_class_accuracy": min(per_class.values())})
                stop = (step + 1 >= cfg.stop.min_steps and acc >= cfg.stop.min_accuracy
                        and min(per_class.values()) >= cfg.stop.min_class_accuracy)
            if logger is not None:
                logger.log(step, record)
            history.append(record)
            if stop:
                stopped_at = step + 1
                break
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()
    from veripo.models.lora import save_policy

    weights = engine.full_state_dict() if engine.backend == "deepspeed" else None
    summary = {"steps": stopped_at, "final_policy": str(out / "final"), "bad_rows": len(errors),
               "seconds": time.perf_counter() - t_start,
               "val_accuracy": next((h["val_accuracy"] for h in reversed(history) if "val_accuracy" in h), None)}
    if engine.is_main:
        save_policy(model, processor, out / "final", state_dict=weights)
        atomic_write_json(out / "final" / "done.json", summary)
    engine.close()
    return summary


HELP = "Supervised warm start on rows with a target 'response', with optional early stopping on val accuracy."


def add_arguments(parser) -> None:
    add_config_arguments(parser)


def run(args) -> int:
    cfg = config_from_args(args, SFTConfig)
    if cfg is None:
        return 0
    print(json.dumps(train_sft(cfg), indent=2))
    return 0
