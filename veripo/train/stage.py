"""The skeleton the three training stages (``veripo sft``, ``grpo``, ``dpo``) share: set-up, resume, the step
loop, checkpoints, the final policy and the summary. A stage supplies its steps and its own state:

    class MyStage(TrainingStage):
        name = "mine"
        def step(self, step) -> dict[str, float]        # one optimiser step (metrics: this rank's)
        def state(self) -> dict                          # saved in each checkpoint ...
        def load_state(self, state) -> None              # ... and restored on --resume
        def before_loop(self, start, resume) -> None     # after a resume, before the first step (replay, caches)
        def summary(self, history, steps_done) -> dict   # done.json

``train(resume)`` then: returns the finished run's summary when ``final/done.json`` exists; saves the config;
restores the newest checkpoint (weights, optimiser, scheduler, RNG, the stage's state); keeps ``metrics.jsonl`` to
the steps before it (nothing logged twice); runs the steps with a progress bar, averaging metrics over ranks;
checkpoints every ``run.save_every`` steps; writes ``final/`` and its ``done.json`` last.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from veripo.config import check_config, save_config
from veripo.io_utils import atomic_write_text, iter_jsonl
from veripo.train.checkpoint import latest_checkpoint
from veripo.train.distributed import TrainEngine, all_reduce_mean, init_distributed
from veripo.train.metrics import MetricsLogger, progress
from veripo.train.optim import build_optimizer, build_scheduler
from veripo.train.policy_setup import load_trainable_policy
from veripo.train.resume_guard import check_resume_config
from veripo.train.run_config import RunConfig  # noqa: F401  (the section every stage's config has)

log = logging.getLogger(__name__)


def trim_metrics(path: Path, start: int) -> None:
    """Keep only the rows of steps before ``start`` (a resumed run logs the later steps again)."""
    if not path.exists():
        return
    keep = [row for row in iter_jsonl(path, []) if int(row.get("step", -1)) < start]
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in keep))


class TrainingStage:
    """See the module doc. ``cfg`` has ``model``, ``optim``, ``dist`` and ``run`` sections."""

    name = "stage"

    def __init__(self, cfg: Any, model: Any = None, processor: Any = None) -> None:
        check_config(cfg, inputs=True)  # value rules and input files, also for a config built in code
        self.cfg = cfg
        self.out = Path(cfg.run.out_dir)
        torch.manual_seed(cfg.run.seed)
        self.rank, self.world_size = 0, 1
        if cfg.dist.backend != "none":  # one process per GPU: each loads the policy onto its own device
            info = init_distributed(cfg.dist.timeout_minutes)
            self.rank, self.world_size = info.rank, info.world_size
            self.check_world(info.world_size)
            if cfg.model.device == "auto" and info.device.type == "cuda":
                cfg.model.device = str(info.device)
        if model is None:
            model, processor = load_trainable_policy(cfg.model)
        self.model, self.processor = model, processor
        self.tokenizer = processor.tokenizer
        self.errors: list[str] = []  # input rows set aside (file:line and why)
        self.train_engine: TrainEngine | None = None

    # ------------------------------------------------------------------------------------ for subclasses
    def check_world(self, world_size: int) -> None:
        """What several processes need from the config (a clear error instead of a hung collective)."""

    def setup_optimisation(self, total_steps: int) -> None:
        """Optimiser, schedule over ``total_steps`` and the train engine (DDP / DeepSpeed wrapper)."""
        self.total_steps = total_steps
        self.optimizer = build_optimizer(self.model, self.cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, self.cfg.optim, total_steps)
        self.train_engine = TrainEngine.create(self.model, self.optimizer, self.scheduler, self.cfg.dist,
                                         grad_clip=self.cfg.optim.grad_clip,
                                         micro_batch_size=self.cfg.optim.micro_batch_size)

    def step(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` saved."""

    def before_loop(self, start: int, resume: bool) -> None:
        """After the checkpoint is restored and before step ``start`` runs."""

    def should_stop(self, step: int, metrics: dict[str, float]) -> bool:
        return False

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        """What the progress bar shows after each step."""
        return {}

    def summary(self, history: list[dict[str, float]], steps_done: int) -> dict[str, Any]:
        return {"steps": steps_done}

    def _out_of_time(self, began: float) -> bool:
        """``run.time_limit_s`` has passed (every rank decides alike: rank 0's clock is broadcast)."""
        limit = self.cfg.run.time_limit_s
        if limit is None:
            return False
        over = float(self.cfg.run.clock() - began >= limit)
        if self.train_engine.world_size > 1:
            from veripo.train.distributed import all_reduce_max

            over = all_reduce_max(over)
        if over:
            log.info("%s: run.time_limit_s=%s reached; stopping", self.name, limit)
        return bool(over)

    def final_files(self, folder: Path) -> None:
        """Files of the stage's own written into ``final/`` beside the policy, before ``done.json``."""

    def close_files(self) -> None:
        """Files the stage keeps open during the loop (closed even when a step fails)."""

    # ------------------------------------------------------------------------------------ the run
    @property
    def is_main(self) -> bool:
        return self.train_engine.is_main

    @property
    def bad_inputs(self) -> list[str]:
        """Input rows set aside while loading (file:line and why)."""
        return self.errors

    def train(self, resume: bool = False) -> dict[str, Any]:
        te, run = self.train_engine, self.cfg.run
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:  # refuse a changed config unless --force-config (veripo/train/resume_guard.py)
            check_resume_config(self.out, self.cfg, force=getattr(self, "force_config", False))
        done = self.out / "final" / "done.json"
        if resume and done.exists():
            log.info("%s: already finished; nothing to do", self.out)
            return json.loads(done.read_text())
        if te.is_main:
            save_config(self.cfg, self.out / "config.yaml")
        start = 0
        spent = 0.0  # seconds of training before this process (run.time_limit_s counts across resumes)
        if resume and (ckpt := latest_checkpoint(self.out)) is not None:
            state = te.restore(ckpt)
            self.load_state(state.get("trainer", {}))
            start = int(state["step"])
            spent = float(state.get("trainer", {}).get("seconds_spent", 0.0))
            log.info("%s: resuming at step %d from %s", self.name, start, ckpt)
        from veripo.train.threads import apply_threads

        log.info("%s: %s", self.name, apply_threads(announce=False).describe())
        self.before_loop(start, resume)
        if te.is_main:
            trim_metrics(self.out / "metrics.jsonl", start)
        te.barrier()
        logger = MetricsLogger(self.out, tensorboard=run.tensorboard) if te.is_main else None
        bar = progress(self.total_steps, self.name, initial=start) if te.is_main else None
        history: list[dict[str, float]] = []
        steps_done = self.total_steps
        began = run.clock() - spent
        try:
            for step in range(start, self.total_steps):
                metrics = self.step(step)
                if te.world_size > 1:
                    metrics = all_reduce_mean(metrics)
                metrics["lr"] = te.current_lr()
                history.append(metrics)
                if logger is not None:
                    logger.log(step, metrics)
                    bar.update(1)
                    bar.set_postfix(**self.postfix(metrics))
                if self.should_stop(step, metrics) or self._out_of_time(began):
                    steps_done = step + 1
                    break
                if run.save_every and (step + 1) % run.save_every == 0 and step + 1 < self.total_steps:
                    te.save(self.out, step + 1, self.processor,
                            {"steps_done": step + 1, "seconds_spent": run.clock() - began, **self.state()},
                            keep_last=run.keep_last)
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
            self.close_files()
        summary = self.summary(history, steps_done)
        te.save_final(self.processor, self.out / "final", summary, extra_files=self.final_files)
        te.close()
        return summary
