"""The GRPO stage's loop: Generate -> Score -> Filter/advantage -> Replay (store) -> Update.

One step:
  1. the sampler picks ``P`` prompts (a pure function of the step, so resuming repeats nothing);
  2. the engine samples ``G`` rollouts each (or, after a crash, the stored rollouts of that step are replayed);
  3. rewards per component (accuracy per problem type, format, ...) and their weighted total;
  4. advantages from the configured estimator (``veripo.algos``), optional DAPO dynamic-sampling mask;
  5. every rollout is appended to ``rollouts.jsonl`` (what the verifier reads) *before* the update;
  6. policy loss from the registry over micro-batches with gradient accumulation, clip, AdamW, schedule.
Checkpoints every ``run.save_every`` steps; ``resume=True`` continues from the newest one.
"""
from __future__ import annotations

import copy
import inspect
import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from veripo.algos import get_advantage_estimator, get_policy_loss
from veripo.config import save_config
from veripo.data.schema import Sample, load_samples
from veripo.grpo.config import GRPOConfig
from veripo.io_utils import atomic_write_json
from veripo.records import RolloutRecord
from veripo.rewards import compute_rewards
from veripo.rollout.sampler import PromptSampler
from veripo.rollout.store import RolloutStore
from veripo.rollout.types import Completion, SamplingParams
from veripo.sequences import build_sequences, completion_logps
from veripo.train.checkpoint import (latest_checkpoint, load_policy_weights, load_trainer_state, save_checkpoint,
                                     set_rng_state)
from veripo.train.metrics import MetricsLogger, progress
from veripo.train.optim import build_optimizer, build_scheduler, clip_and_step
from veripo.train.policy_setup import load_trainable_policy, model_device

log = logging.getLogger(__name__)


def make_engine(cfg: GRPOConfig, model, processor):
    if cfg.rollout.engine == "hf":
        from veripo.rollout.hf_engine import HFEngine

        return HFEngine(model, processor, cfg.video, batch_size=cfg.rollout.batch_size)
    if cfg.rollout.engine == "vllm":
        from veripo.rollout.vllm_engine import VLLMEngine  # GPU extra; imported only when asked for

        return VLLMEngine.from_config(cfg, model, processor)
    raise ValueError(f"rollout.engine must be 'hf' or 'vllm', got {cfg.rollout.engine!r}")


def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params


def load_training_rows(cfg: GRPOConfig, errors: list[str]) -> list[Sample]:
    rows = load_samples(cfg.data.train_file, strict=cfg.data.strict, root=cfg.data.root, errors=errors)
    if cfg.data.exclude_ids_file:
        drop = set(Path(cfg.data.exclude_ids_file).read_text().split())
        rows = [r for r in rows if r.problem_id not in drop]
    if cfg.data.max_rows:
        rows = rows[: cfg.data.max_rows]
    return rows


class GRPOTrainer:
    def __init__(self, cfg: GRPOConfig, model=None, processor=None):
        self.cfg = cfg
        self.run_dir = Path(cfg.run.out_dir)
        torch.manual_seed(cfg.run.seed)
        if model is None:
            model, processor = load_trainable_policy(cfg.model)
        self.model, self.processor = model, processor
        self.tokenizer = processor.tokenizer
        self.data_errors: list[str] = []
        self.rows = load_training_rows(cfg, self.data_errors)
        if not self.rows:
            raise ValueError(f"{cfg.data.train_file}: no usable training rows ({len(self.data_errors)} bad)")
        self.sampler = PromptSampler(self.rows, cfg.rollout.prompts_per_step, cfg.run.seed)
        self.engine = make_engine(cfg, self.model, self.processor)
        self.params = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                     top_k=cfg.rollout.top_k, max_new_tokens=cfg.rollout.max_new_tokens,
                                     stop_at_answer=cfg.rollout.stop_at_answer)
        self.estimator = get_advantage_estimator(cfg.algo.advantage_estimator)
        self.policy_loss = get_policy_loss(cfg.algo.policy_loss)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.run.steps)
        self.store = RolloutStore(self.run_dir / "rollouts.jsonl")
        self.ref_model = None
        if cfg.algo.beta > 0 and not hasattr(self.model, "disable_adapter"):
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.skipped: list[str] = []  # prompts set aside (unreadable video, ...), with the reason

    # ----------------------------------------------------------------------------------------- run
    def train(self, resume: bool = False) -> dict[str, Any]:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        done_marker = self.run_dir / "final" / "done.json"
        if resume and done_marker.exists():
            log.info("%s: already finished; nothing to do", self.run_dir)
            return json.loads(done_marker.read_text())
        save_config(cfg, self.run_dir / "config.yaml")
        start, replay = 0, {}
        if resume:
            start, replay = self._resume()
        elif self.store.path.exists():
            self.store.path.unlink()  # a fresh run owns its store
        logger = MetricsLogger(self.run_dir, tensorboard=cfg.run.tensorboard)
        bar = progress(cfg.run.steps, "grpo", initial=start)
        history: list[dict[str, float]] = []
        try:
            for step in range(start, cfg.run.steps):
                metrics = self.step(step, replay.get(step))
                history.append(metrics)
                logger.log(step, metrics)
                bar.update(1)
                bar.set_postfix(reward=f"{metrics['reward/total']:.2f}", acc=f"{metrics['reward/accuracy']:.2f}"
                                if "reward/accuracy" in metrics else None)
                if cfg.run.save_every and (step + 1) % cfg.run.save_every == 0 and step + 1 < cfg.run.steps:
                    self._save(step + 1)
        finally:
            bar.close()
            logger.close()
            self.store.close()
        return self._finish(history)

    def _save(self, steps_done: int) -> None:
        save_checkpoint(self.run_dir, steps_done, self.model, self.processor, self.optimizer, self.scheduler,
                        {"steps_done": steps_done, "skipped": self.skipped}, keep_last=self.cfg.run.keep_last)

    def _resume(self) -> tuple[int, dict[int, list[RolloutRecord]]]:
        ckpt = latest_checkpoint(self.run_dir)
        start = 0
        if ckpt is not None:
            state = load_trainer_state(ckpt)
            load_policy_weights(self.model, ckpt)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            set_rng_state(state["rng"])
            self.skipped = list(state["trainer"].get("skipped", []))
            start = int(state["step"])
        errors: list[str] = []
        stored = self.store.by_step(errors)
        for e in errors:
            log.warning("rollout store: %s (skipped)", e)
        replay = {s: recs for s, recs in stored.items() if s >= start}
        log.info("resuming at step %d from %s; replaying stored rollouts of steps %s", start, ckpt, sorted(replay))
        return start, replay

    def _finish(self, history: list[dict[str, float]]) -> dict[str, Any]:
        from veripo.models.lora import save_policy

        final = self.run_dir / "final"
        save_policy(self.model, self.processor, final)
        summary = {"steps": self.cfg.run.steps, "final_policy": str(final), "rollouts": str(self.store.path),
                   "bad_rows": len(self.data_errors), "skipped_prompts": len(self.skipped)}
        if history:
            last = history[-min(5, len(history)):]
            for key in ("reward/total", "reward/accuracy", "reward/format", "response_length"):
                if key in last[0]:
                    summary[key + "/last5"] = sum(h[key] for h in last) / len(last)
        atomic_write_json(final / "done.json", summary)
        return summary

    # ---------------------------------------------------------------------------------------- step
    def _sample(self, samples: list[Sample]) -> tuple[list[Sample], list[list[Completion]]]:
        """Generate G rollouts per prompt; a prompt whose video cannot be read is set aside (named, counted)."""
        from veripo.errors import VideoError

        G = self.cfg.rollout.group_size
        try:
            return samples, self.engine.generate(samples, n=G, params=self.params)
        except VideoError:
            good = []
            for s in samples:
                try:
                    self.engine.prompt_batch([s])
                    good.append(s)
                except VideoError as e:
                    log.warning("prompt %s set aside: %s", s.problem_id, e)
                    self.skipped.append(f"{s.problem_id}: {e}")
            if not good:
                return [], []
            return good, self.engine.generate(good, n=G, params=self.params)

    def step(self, step: int, replayed: list[RolloutRecord] | None = None) -> dict[str, float]:
        cfg = self.cfg
        G = cfg.rollout.group_size
        t0 = time.perf_counter()
        if replayed:
            samples, groups = self._from_records(replayed)
        else:
            samples, groups = self._sample(self.sampler.batch(step))
        t_gen = time.perf_counter() - t0
        if not samples:
            return {"reward/total": 0.0, "skipped_all": 1.0}
        flat = [c for g in groups for c in g]
        flat_samples = [s for s in samples for _ in range(G)]
        texts = [c.text for c in flat]
        scores = compute_rewards(texts, flat_samples, cfg.reward)
        group_ids = torch.arange(len(samples)).repeat_interleave(G)
        components = [k for k in scores if k != "total"]
        if cfg.algo.decoupled_rewards:
            reward_tensor = torch.tensor([scores[k] for k in components], dtype=torch.float32).T
        else:
            reward_tensor = torch.tensor(scores["total"], dtype=torch.float32)
        est_kwargs = dict(cfg.algo.advantage_kwargs)
        if cfg.algo.decoupled_rewards and _accepts(self.estimator, "reward_weights"):
            est_kwargs.setdefault("reward_weights", [float(cfg.reward.weights[k]) for k in components])
        if _accepts(self.estimator, "seq_logps"):
            est_kwargs["seq_logps"] = torch.tensor([sum(c.logps) / max(1, len(c.logps)) for c in flat])
        if _accepts(self.estimator, "correct") and "accuracy" in scores:
            est_kwargs["correct"] = torch.tensor(scores["accuracy"]) >= 1.0
        result = self.estimator(reward_tensor, group_ids, **est_kwargs)
        keep = result.keep_mask.clone()
        totals = torch.tensor(scores["total"])
        if cfg.algo.dynamic_sampling:
            from veripo.algos.filters import dynamic_sampling_mask

            keep &= dynamic_sampling_mask(totals, group_ids)
        advantages = result.advantages
        t_score = time.perf_counter() - t0 - t_gen
        if not replayed:
            self.store.append(self._records(step, samples, groups, scores, advantages, keep, t_gen))
        t1 = time.perf_counter()
        update_metrics = self._update(samples, flat, advantages, keep, group_ids, scores) if keep.any() else {}
        t_update = time.perf_counter() - t1
        lengths = [len(c.token_ids) for c in flat]
        metrics: dict[str, float] = {f"reward/{k}": sum(v) / len(v) for k, v in scores.items()}
        zero_spread = sum(1 for g in range(len(samples)) if totals[g * G:(g + 1) * G].std(unbiased=False) == 0)
        metrics.update({
            "response_length": sum(lengths) / len(lengths),
            "truncated_frac": sum(c.finish_reason == "length" for c in flat) / len(flat),
            "frac_groups_nonzero_std": 1 - zero_spread / len(samples),
            "kept_frac": float(keep.float().mean()),
            "lr": self.scheduler.get_last_lr()[0],
            "time/generate_s": t_gen, "time/score_s": t_score, "time/update_s": t_update,
            "tokens_per_s": sum(lengths) / max(t_gen, 1e-9),
            **{f"adv/{k}": float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))},
            **update_metrics,
        })
        return metrics

    def _from_records(self, records: list[RolloutRecord]) -> tuple[list[Sample], list[list[Completion]]]:
        by_group: dict[str, list[RolloutRecord]] = {}
        for r in records:
            by_group.setdefault(r.group_id, []).append(r)
        samples, groups = [], []
        for recs in by_group.values():
            recs.sort(key=lambda r: r.rollout_id)
            samples.append(Sample.from_dict(recs[0].sample))
            groups.append([Completion(r.response, r.token_ids, r.logps, r.finish_reason) for r in recs])
        return samples, groups

    def _records(self, step, samples, groups, scores, advantages, keep, t_gen) -> list[RolloutRecord]:
        G = self.cfg.rollout.group_size
        out = []
        for g, (sample, comps) in enumerate(zip(samples, groups)):
            prompt = self.engine.prompt_text(sample) if hasattr(self.engine, "prompt_text") else None
            from veripo.prompts import question_text

            for j, c in enumerate(comps):
                i = g * G + j
                adv = advantages[i]
                out.append(RolloutRecord(
                    rollout_id=f"{step:06d}-{sample.problem_id}-{j:02d}", step=step,
                    group_id=f"{step:06d}-{sample.problem_id}", sample=sample.to_dict(),
                    prompt=prompt or question_text(sample), response=c.text, token_ids=c.token_ids, logps=c.logps,
                    rewards={k: v[i] for k, v in scores.items()},
                    advantage=float(adv.mean()) if bool(keep[i]) else None, kept=bool(keep[i]),
                    finish_reason=c.finish_reason, timings={"generate_s": t_gen / max(1, len(samples))}))
        return out

    def _ref_context(self):
        if self.cfg.algo.beta > 0 and self.ref_model is None:
            return self.model.disable_adapter()
        return nullcontext()

    def _update(self, samples, flat, advantages, keep, group_ids, scores) -> dict[str, float]:
        cfg = self.cfg
        G = cfg.rollout.group_size
        prompts = self.engine.prompt_batch(samples)
        index = [g for g in range(len(samples)) for _ in range(G)]
        batch = build_sequences(prompts, index, [c.token_ids or [self.tokenizer.pad_token_id] for c in flat],
                                self.tokenizer.pad_token_id)
        device = model_device(self.model)
        batch.model_inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.model_inputs.items()}
        batch.completion_ids, batch.completion_mask = batch.completion_ids.to(device), batch.completion_mask.to(device)
        n = len(batch)
        mbs = cfg.optim.micro_batch_size
        if cfg.algo.policy_loss == "drpo":  # DRPO normalises within groups: keep groups whole
            mbs = max(G, mbs // G * G)
        temperature = cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
        ref_logps = old_logps = None
        if cfg.algo.beta > 0:
            with torch.no_grad(), self._ref_context():
                ref_logps, _ = completion_logps(self.ref_model or self.model, batch, temperature, mbs)
        if cfg.algo.ppo_epochs > 1:
            with torch.no_grad():
                old_logps, _ = completion_logps(self.model, batch, temperature, mbs)
        mask = batch.completion_mask
        total_tokens = float((mask * keep.to(device)[:, None]).sum())
        accum = max(1, -(-n // mbs))
        advantages = advantages.to(device)
        binary = torch.tensor(scores.get("accuracy", scores["total"]), device=device) >= 1.0
        sums: dict[str, float] = {}
        entropy_sum = 0.0
        self.model.train()
        for _ in range(cfg.algo.ppo_epochs):
            for start in range(0, n, mbs):
                stop = min(n, start + mbs)
                part = batch.slice(start, stop)
                logps, entropy = completion_logps(self.model, part, temperature, with_entropy=True)
                loss, m = self.policy_loss(
                    logps=logps, old_logps=None if old_logps is None else old_logps[start:stop],
                    advantages=advantages[start:stop], mask=part.completion_mask,
                    ref_logps=None if ref_logps is None else ref_logps[start:stop],
                    keep_mask=keep[start:stop].to(device), clip_low=cfg.algo.clip_low, clip_high=cfg.algo.clip_high,
                    dual_clip=cfg.algo.dual_clip, beta=cfg.algo.beta, loss_agg_mode=cfg.algo.loss_agg_mode,
                    num_items_in_batch=total_tokens, grad_accum_steps=accum, steps_per_generation=accum,
                    max_completion_length=cfg.rollout.max_new_tokens,
                    rewards=binary[start:stop].float(), group_ids=group_ids[start:stop].to(device),
                    **cfg.algo.loss_kwargs)
                loss.backward()
                pm = part.completion_mask
                entropy_sum += float((entropy * pm).sum())
                for k, v in m.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * (stop - start) / n
            grad_norm = clip_and_step(self.model, self.optimizer, self.scheduler, cfg.optim.grad_clip)
        sums = {k: v / cfg.algo.ppo_epochs for k, v in sums.items()}
        sums["grad_norm"] = grad_norm
        sums["entropy"] = entropy_sum / max(1.0, float(mask.sum())) / cfg.algo.ppo_epochs
        return sums
