"""``veripo sft``: supervised warm start on rows that carry a target ``response``.

    L = - (1 / #tokens) * sum over response tokens of log pi(y_t | video, question, y_<t)

With ``stop.val_file`` it evaluates greedy accuracy on held-out rows every ``stop.eval_every`` steps and
stops once the accuracy reaches ``stop.min_accuracy`` *and* every answer class reaches
``stop.min_class_accuracy`` — the learning probe's fix for a warm start that is confidently wrong on one
class, which leaves GRPO groups with zero reward spread (notes/learning-probe.md).
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
from veripo.train.metrics import MetricsLogger, progress
from veripo.train.optim import OptimConfig, build_optimizer, build_scheduler, clip_and_step
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


def greedy_accuracy(model, processor, rows: list[Sample], sampling: VideoSampling, cache: FrameCache,
                    max_new_tokens: int = 64, batch_size: int = 32) -> tuple[float, dict[str, float]]:
    """Greedy accuracy over ``rows`` and per gold answer class."""
    from veripo.rewards import accuracy_reward
    from veripo.rollout.hf_engine import HFEngine

    engine = HFEngine(model, processor, sampling, cache, batch_size=batch_size)
    outs = engine.generate(rows, n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    per_class: dict[str, list[float]] = {}
    scores = []
    for row, group in zip(rows, outs):
        acc = accuracy_reward(group[0].text, row)
        scores.append(acc)
        per_class.setdefault(row.answer, []).append(acc)
    return (sum(scores) / max(1, len(scores)),
            {k: sum(v) / len(v) for k, v in sorted(per_class.items())})


def train_sft(cfg: SFTConfig, model=None, processor=None) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
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
    logger = MetricsLogger(out, tensorboard=False)
    bar = progress(cfg.steps, "sft")
    history: list[dict[str, Any]] = []
    stopped_at = cfg.steps
    t_start = time.perf_counter()
    try:
        for step in range(cfg.steps):
            batch_rows = sampler.batch(step)
            prompts = build_prompt_batch(processor, batch_rows, cache, cfg.video)
            targets = [tok.encode(r.response, add_special_tokens=False) + [eos] for r in batch_rows]
            seqs = build_sequences(prompts, list(range(len(batch_rows))), targets, tok.pad_token_id)
            model.train()
            n, mbs = len(seqs), cfg.optim.micro_batch_size
            total_tokens = float(seqs.completion_mask.sum())
            loss_value = 0.0
            for s in range(0, n, mbs):
                part = seqs.slice(s, min(n, s + mbs))
                logps, _ = completion_logps(model, part)
                loss = -(logps * part.completion_mask).sum() / total_tokens
                loss.backward()
                loss_value += float(loss.detach())
            grad_norm = clip_and_step(model, optimizer, scheduler, cfg.optim.grad_clip)
            record: dict[str, Any] = {"loss": loss_value, "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0]}
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            if val and (step + 1) % cfg.stop.eval_every == 0:
                acc, per_class = greedy_accuracy(model, processor, val, cfg.video, cache, cfg.stop.max_new_tokens)
                record.update({"val_accuracy": acc, "val_min_class_accuracy": min(per_class.values())})
                if (step + 1 >= cfg.stop.min_steps and acc >= cfg.stop.min_accuracy
                        and min(per_class.values()) >= cfg.stop.min_class_accuracy):
                    logger.log(step, record)
                    history.append(record)
                    stopped_at = step + 1
                    break
            logger.log(step, record)
            history.append(record)
    finally:
        bar.close()
        logger.close()
    from veripo.models.lora import save_policy

    save_policy(model, processor, out / "final")
    summary = {"steps": stopped_at, "final_policy": str(out / "final"), "bad_rows": len(errors),
               "seconds": time.perf_counter() - t_start,
               "val_accuracy": next((h["val_accuracy"] for h in reversed(history) if "val_accuracy" in h), None)}
    atomic_write_json(out / "final" / "done.json", summary)
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
