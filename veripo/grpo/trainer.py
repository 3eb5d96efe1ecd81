"""The GRPO stage's loop: Control -> Generate -> Score -> Filter/advantage -> Replay (store) -> Update.

One step:
  1. the sampler picks ``P`` prompts (a pure function of the step, so resuming repeats nothing); a controller
     (``rollout.controller``, veripo/rollout/control.py) may pick others (GDRO) and size each group
     (GDRO, XRPO: budget-neutral, ``P * G`` rollouts in all); ``rollout.prune=arrol`` keeps ``n`` of a larger pool
     (veripo/rollout/prune.py, cut mid-generation on the HF engine);
  2. the engine samples the rollouts, as independent groups or as trees with shared prefixes
     (``rollout.tree_branches``, veripo/rollout/tree.py), from the step's prompts processed once; after a crash,
     the stored rollouts of that step are replayed instead, each group (or tree) as it was;
  3. rewards per component (accuracy per problem type, format, ...) and their weighted total;
  4. advantages from the configured estimator (veripo/grpo/advantage_step.py: ``branch`` reads the trees), optional
     DAPO dynamic-sampling mask;
  5. every rollout is appended to ``rollouts.jsonl`` (what the verifier reads) *before* the update;
  6. the controller observes the step's outcomes (fresh and replayed steps alike: its state, saved in each
     checkpoint, is the same after a resume);
  7. policy loss from the registry over micro-batches with gradient accumulation, clip, AdamW, schedule; an
     engine with ``sync_weights(model)`` (colocated vLLM) then receives the new weights.
Checkpoints every ``run.save_every`` steps; ``resume=True`` continues from the newest one.

Several processes (``dist.backend`` ddp | deepspeed, veripo/train/distributed.py): each rank samples its share
``prompts[rank::W]`` of the step's prompts (the controller's choice, the same on every rank) with the plain model;
the ranks' rollout records are gathered and rank 0 alone appends them; controllers and the pruner observe every
rank's outcomes, so their state is identical on all ranks; the update runs the same number of micro-batches on
every rank (zero-weighted repeats fill the gap) through the wrapped model, with the dapo normaliser
``N = sum_r tokens_r / W`` per rank so that the averaged gradient equals the one-process gradient; metrics are
averaged over ranks and rank 0 writes them.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from veripo.algos import get_advantage_estimator, get_policy_loss
from veripo.config import save_config
from veripo.data.schema import Sample, load_samples
from veripo.grpo.advantage_step import row_advantages, step_advantages
from veripo.grpo.config import GRPOConfig
from veripo.grpo.rollout_records import groups_from_records, records_from_groups
from veripo.io_utils import atomic_write_bytes, atomic_write_json
from veripo.records import RolloutRecord
from veripo.rewards import compute_rewards
from veripo.rollout.control import build_controller
from veripo.rollout.partial import generate_groups, partial_batch, require_partial, supports_partial
from veripo.rollout.prompt_batch import PromptBatch
from veripo.rollout.prune import build_pruner
from veripo.rollout.sampler import PromptSampler
from veripo.rollout.store import RolloutStore
from veripo.rollout.tree import TreeShape, grow_trees, tree_layout
from veripo.rollout.types import Completion, SamplingParams
from veripo.sequences import build_sequences, completion_logps
from veripo.train.checkpoint import (checkpoint_dir, latest_checkpoint, load_policy_weights, load_trainer_state,
                                     save_checkpoint, set_rng_state)
from veripo.train.distributed import (TrainEngine, all_gather_objects, all_reduce_max, all_reduce_mean, all_reduce_sum,
                                      init_distributed, shard)
from veripo.train.metrics import MetricsLogger, progress
from veripo.train.optim import build_optimizer, build_scheduler
from veripo.train.policy_setup import load_trainable_policy, model_device
from veripo.train.resume_guard import check_resume_config

log = logging.getLogger(__name__)


def make_engine(cfg: GRPOConfig, model, processor):
    if cfg.rollout.engine == "hf":
        from veripo.rollout.hf_engine import HFEngine

        return HFEngine(model, processor, cfg.video, batch_size=cfg.rollout.batch_size,
                        max_sequences=cfg.rollout.batch_size * cfg.rollout.group_size)
    if cfg.rollout.engine == "vllm":
        from veripo.rollout.vllm_engine import VLLMEngine  # GPU extra; imported only when asked for

        return VLLMEngine.from_config(cfg, model, processor)
    raise ValueError(f"rollout.engine must be 'hf' or 'vllm', got {cfg.rollout.engine!r}")


def micro_batches(group_ids: list[int], size: int, whole_groups: bool = False) -> list[tuple[int, int]]:
    """``[start, stop)`` row ranges of at most ``size`` rows; with ``whole_groups`` a range never splits a group
    (consecutive rows with one id), and a group larger than ``size`` gets a range of its own."""
    n = len(group_ids)
    if not whole_groups:
        return [(a, min(n, a + size)) for a in range(0, n, size)]
    bounds = [i for i in range(1, n) if group_ids[i] != group_ids[i - 1]] + [n]
    out, chunk, group = [], 0, 0
    for end in bounds:  # the group [group, end) joins the chunk [chunk, group) unless that makes it too large
        if end - chunk > size and group > chunk:
            out.append((chunk, group))
            chunk = group
        group = end
    return out + ([(chunk, n)] if n > chunk else [])


def load_training_rows(cfg: GRPOConfig, errors: list[str]) -> list[Sample]:
    rows = load_samples(cfg.data.train_file, strict=cfg.data.strict, root=cfg.data.root, errors=errors,
                        max_prompt_chars=cfg.data.max_prompt_chars)
    if cfg.data.exclude_ids_file:
        drop = set(Path(cfg.data.exclude_ids_file).read_text().split())
        rows = [r for r in rows if r.problem_id not in drop]
    if cfg.data.max_rows:
        rows = rows[: cfg.data.max_rows]
    return rows


def check_world(cfg: GRPOConfig, world_size: int) -> None:
    """What several processes need from the config (clear errors instead of hung collectives)."""
    if world_size <= 1:
        return
    if cfg.rollout.prompts_per_step % world_size:
        raise ValueError(f"rollout.prompts_per_step={cfg.rollout.prompts_per_step} is not a multiple of the "
                         f"{world_size} processes: every process samples the same number of prompts")


def tree_shape(cfg: GRPOConfig) -> TreeShape | None:
    """The configured tree of rollouts (None = independent rollouts), checked against the rest of the config."""
    ro = cfg.rollout
    if not ro.tree_branches:
        return None
    shape = TreeShape(tuple(int(b) for b in ro.tree_branches), int(ro.tree_segment_tokens))
    shape.check(ro.max_new_tokens, ro.group_size)
    for key, value in (("rollout.controller", ro.controller), ("rollout.prune", ro.prune)):
        if value != "none":
            raise ValueError(f"rollout.tree_branches with {key}={value} is not supported: a tree fixes its own "
                             "number of leaves; use one or the other")
    return shape


class GRPOTrainer:
    def __init__(self, cfg: GRPOConfig, model=None, processor=None):
        self.cfg = cfg
        self.run_dir = Path(cfg.run.out_dir)
        torch.manual_seed(cfg.run.seed)
        rank = 0
        if cfg.dist.backend != "none":  # one process per GPU: each loads the policy onto its own device
            info = init_distributed(cfg.dist.timeout_minutes)
            rank = info.rank
            check_world(cfg, info.world_size)
            if cfg.model.device == "auto" and info.device.type == "cuda":
                cfg.model.device = str(info.device)
        if model is None:
            model, processor = load_trainable_policy(cfg.model)
        self.model, self.processor = model, processor
        self.tokenizer = processor.tokenizer
        self.data_errors: list[str] = []
        self.rows = load_training_rows(cfg, self.data_errors)
        if not self.rows:
            raise ValueError(f"{cfg.data.train_file}: no usable training rows ({len(self.data_errors)} bad)")
        self.sampler = PromptSampler(self.rows, cfg.rollout.prompts_per_step, cfg.run.seed)
        ro = cfg.rollout
        self.controller = build_controller(ro.controller, self.rows, ro.group_size, ro.min_group_size, ro.max_group,
                                           cfg.run.seed, ro.controller_kwargs)
        self.pruner = build_pruner(ro.prune, cfg.run.seed, ro.prune_kwargs, rank)
        self.engine = make_engine(cfg, self.model, self.processor)
        self.tree = tree_shape(cfg)
        if self.tree is not None:
            require_partial(self.engine, "rollout.tree_branches")
        if self.pruner is not None:
            self.pruner.resolve_mode(self.engine)
        self.params = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                     top_k=cfg.rollout.top_k, max_new_tokens=cfg.rollout.max_new_tokens,
                                     stop_at_answer=cfg.rollout.stop_at_answer)
        self.estimator = get_advantage_estimator(cfg.algo.advantage_estimator)
        self.policy_loss = get_policy_loss(cfg.algo.policy_loss)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.run.steps)
        # the update's forwards go through train_engine.model (DDP / DeepSpeed wrapper); generation, reference and
        # old-policy passes use self.model
        self.train_engine = TrainEngine.create(self.model, self.optimizer, self.scheduler, cfg.dist,
                                               grad_clip=cfg.optim.grad_clip,
                                               micro_batch_size=cfg.optim.micro_batch_size)
        self._step_prompts = None  # (samples, {"generate": ..., "update": ...}): the step's processed prompts
        self._spare = None  # a micro-batch kept for zero-weighted passes when this rank has no rows of its own
        self.store = RolloutStore(self.run_dir / "rollouts.jsonl")
        self.ref_model = None
        if cfg.algo.beta > 0 and not hasattr(self.model, "disable_adapter"):
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.skipped: list[str] = []  # prompts set aside (unreadable video, ...), with the reason

    @property
    def is_main(self) -> bool:
        return self.train_engine.is_main

    @property
    def bad_inputs(self) -> list[str]:
        """Training rows set aside while loading (file:line and why)."""
        return self.data_errors

    # ----------------------------------------------------------------------------------------- run
    def train(self, resume: bool = False) -> dict[str, Any]:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:  # refuse a changed config unless --force-config (veripo/train/resume_guard.py)
            check_resume_config(self.run_dir, cfg, force=getattr(self, "force_config", False))
        done_marker = self.run_dir / "final" / "done.json"
        if resume and done_marker.exists():
            log.info("%s: already finished; nothing to do", self.run_dir)
            return json.loads(done_marker.read_text())
        te = self.train_engine
        if te.is_main:
            save_config(cfg, self.run_dir / "config.yaml")
        start, replay = 0, {}
        if resume:
            start, replay = self._resume()
        elif self.store.path.exists() and te.is_main:
            self.store.path.unlink()  # a fresh run owns its store
        te.barrier()
        logger = MetricsLogger(self.run_dir, tensorboard=cfg.run.tensorboard) if te.is_main else None
        bar = progress(cfg.run.steps, "grpo", initial=start) if te.is_main else None
        history: list[dict[str, float]] = []
        try:
            for step in range(start, cfg.run.steps):
                metrics = self.step(step, replay.get(step))
                if te.world_size > 1:
                    metrics = all_reduce_mean(metrics)
                history.append(metrics)
                if logger is not None:
                    logger.log(step, metrics)
                    bar.update(1)
                    bar.set_postfix(reward=f"{metrics['reward/total']:.2f}", acc=f"{metrics['reward/accuracy']:.2f}"
                                    if "reward/accuracy" in metrics else None)
                if cfg.run.save_every and (step + 1) % cfg.run.save_every == 0 and step + 1 < cfg.run.steps:
                    self._save(step + 1)
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
            self.store.close()
        summary = self._finish(history)
        te.close()
        return summary

    def _save(self, steps_done: int) -> None:
        """Rank 0 writes the policy + trainer state; DeepSpeed's partitioned state is written by every rank."""
        te = self.train_engine
        state = {"steps_done": steps_done, "skipped": self.skipped, "controller": self.controller.state_dict()}
        if self.pruner is not None:
            state["pruner"] = self.pruner.state_dict()
        if te.is_main:
            save_checkpoint(self.run_dir, steps_done, self.model, self.processor, self.optimizer, self.scheduler,
                            state, keep_last=self.cfg.run.keep_last)
        te.barrier()
        if te.backend == "deepspeed":
            te.save_checkpoint(checkpoint_dir(self.run_dir, steps_done))

    def _resume(self) -> tuple[int, dict[int, list[RolloutRecord]]]:
        ckpt = latest_checkpoint(self.run_dir)
        start = 0
        if ckpt is not None:
            state = load_trainer_state(ckpt)
            if self.train_engine.backend == "deepspeed":
                self.train_engine.load_checkpoint(ckpt)
            else:
                load_policy_weights(self.model, ckpt)
                self.train_engine.load_state_dict({"optimizer": state["optimizer"], "scheduler": state["scheduler"]})
            if hasattr(self.engine, "sync_weights"):  # a colocated vLLM engine must see the restored policy
                self.engine.sync_weights(self.model)
            set_rng_state(state["rng"])
            self.skipped = list(state["trainer"].get("skipped", []))
            if "controller" in state["trainer"]:
                self.controller.load_state_dict(state["trainer"]["controller"])
            if self.pruner is not None and "pruner" in state["trainer"]:
                self.pruner.load_state_dict(state["trainer"]["pruner"])
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

        te = self.train_engine
        final = self.run_dir / "final"
        weights = te.full_state_dict() if te.backend == "deepspeed" else None  # collective under ZeRO-3
        skipped = len(self.skipped) if te.world_size == 1 else int(all_reduce_sum(len(self.skipped)))
        summary = {"steps": self.cfg.run.steps, "final_policy": str(final), "rollouts": str(self.store.path),
                   "bad_rows": len(self.data_errors), "skipped_prompts": skipped}
        if te.world_size > 1:
            summary["processes"] = te.world_size
        if history:
            last = history[-min(5, len(history)):]
            for key in ("reward/total", "reward/accuracy", "reward/format", "response_length"):
                if key in last[0]:
                    summary[key + "/last5"] = sum(h[key] for h in last) / len(last)
        if te.is_main:
            if te.backend == "deepspeed":
                save_policy(self.model, self.processor, final, state_dict=weights)
            else:
                save_policy(self.model, self.processor, final)
            atomic_write_json(final / "done.json", summary)
        te.barrier()
        return summary

    # ---------------------------------------------------------------------------------------- step
    def _generate(self, step: int, samples: list[Sample], sizes: list[int], call: int,
                  pruned_out: list[list[Completion]]) -> list[list[Completion]]:
        """``sizes[i]`` rollouts for ``samples[i]``: a tree of ``group_size`` leaves each with tree rollouts; with
        ARRoL pruning, ``sizes[i]`` survivors of a larger pool (the pruned go to ``pruned_out``, for metrics)."""
        batch = self._prompts(samples, for_generation=True)
        if self.tree is not None:
            return grow_trees(self.engine, samples, self.tree, self.params, batch)
        if self.pruner is not None:
            kept, pruned = self.pruner.generate(self.engine, step, samples, sizes, self.params, call, batch)
            pruned_out.extend(pruned)
            return kept
        return generate_groups(self.engine, samples, sizes, self.params, batch)

    def _prompts(self, samples: list[Sample], for_generation: bool = False):
        """The step's prompts, processed once (videos decoded, chat template, processor) and shared by generation
        and the update: the processor batch on the HF engine. For generation on an engine that cannot continue
        partial rollouts: None (it prepares its own inputs); on vLLM: its requests (the update builds the
        processor batch itself)."""
        if self._step_prompts is None or self._step_prompts[0] is not samples:
            self._step_prompts = (samples, {})  # holds `samples`, so its identity cannot be reused by a new list
        cache = self._step_prompts[1]
        key = "generate" if for_generation else "update"
        if key not in cache:
            if for_generation:
                batch = partial_batch(self.engine, samples) if supports_partial(self.engine) else None
                cache["generate"] = batch
                if isinstance(batch, PromptBatch):  # the HF engine's: the update reads the very same batch
                    cache.setdefault("update", batch)
            else:
                cache["update"] = self.engine.prompt_batch(samples)
        return cache[key]

    def _usable(self, samples: list[Sample]) -> list[Sample]:
        """The prompts whose video can be read; the others are set aside (named, counted)."""
        from veripo.errors import VideoError

        good = []
        for s in samples:
            try:
                self.engine.prompt_batch([s])
                good.append(s)
            except VideoError as e:
                log.warning("prompt %s set aside: %s", s.problem_id, e)
                self.skipped.append(f"{s.problem_id}: {e}")
        return good

    def _sample(self, step: int, samples: list[Sample], pruned: list[list[Completion]] | None = None
                ) -> tuple[list[Sample], list[list[Completion]]]:
        """Generate the controller's allocation of rollouts per prompt (``group_size`` each without one); a
        prompt whose video cannot be read is set aside and the survivors' allocation redone."""
        from veripo.errors import VideoError

        pruned = [] if pruned is None else pruned
        try:
            groups = self._generate(step, samples, self.controller.allocate(step, samples), 0, pruned)
        except VideoError:
            samples = self._usable(samples)
            if not samples:
                return [], []
            pruned.clear()
            groups = self._generate(step, samples, self.controller.allocate(step, samples), 0, pruned)
        extra = self.controller.budget(samples) - sum(len(g) for g in groups)
        if extra > 0 and self.controller.refines:  # XRPO: the budget left, where the first phase says it helps most
            first = compute_rewards([c.text for g in groups for c in g],
                                    [s for s, g in zip(samples, groups) for _ in g], self.cfg.reward)["total"]
            rewards, at = [], 0
            for g in groups:
                rewards.append(first[at: at + len(g)])
                at += len(g)
            more = self._generate(step, samples, self.controller.refine(step, samples, rewards, extra), 1, pruned)
            groups = [g + m for g, m in zip(groups, more)]
        return samples, groups

    def step(self, step: int, replayed: list[RolloutRecord] | None = None) -> dict[str, float]:
        cfg = self.cfg
        t0 = time.perf_counter()
        pruned: list[list[Completion]] = []
        te = self.train_engine
        if replayed:
            samples, groups = groups_from_records(replayed, self._stored_features(step))
            if te.world_size > 1:  # this rank's share, in the order the sampler gave the prompts
                samples, groups = self._replay_share(step, samples, groups)
        else:
            # the controller's choice is the same on every rank (its state is kept identical): then each rank
            # samples its share, with its own random stream (a function of seed, step and rank, so that the
            # ranks' rollouts are independent and a resumed run samples as the killed one would have)
            prompts = self.controller.select_prompts(step, self.sampler.batch(step))
            if te.world_size > 1:
                prompts = shard(prompts, te.rank, te.world_size)
                torch.manual_seed(int(np.random.default_rng([cfg.run.seed, step, te.rank]).integers(2 ** 62)))
            with te.for_generation():  # ZeRO-3: the whole model on every rank while it samples
                samples, groups = self._sample(step, prompts, pruned)
        t_gen = time.perf_counter() - t0
        if not samples:
            if te.world_size > 1:  # take part in the step's collectives with nothing of its own
                self._store_records(step, [], replayed)
                self._observe([], [], [], [], [], [])
                if self._update_anywhere(False):
                    self._idle_update()
            return {"reward/total": 0.0, "skipped_all": 1.0}
        sizes = [len(g) for g in groups]
        offsets = [sum(sizes[:g]) for g in range(len(sizes) + 1)]
        flat = [c for g in groups for c in g]
        scores = compute_rewards([c.text for c in flat], [s for s, n in zip(samples, sizes) for _ in range(n)],
                                 cfg.reward)
        adv = step_advantages(self.estimator, cfg.algo, cfg.reward, scores, groups,
                              self.controller.advantage_weights(samples))
        advantages, keep, train_mask, group_ids = adv.advantages, adv.keep, adv.train_mask, adv.group_ids
        totals = torch.tensor(scores["total"])
        t_score = time.perf_counter() - t0 - t_gen
        p_hats = self.pruner.p_hat(flat) if self.pruner is not None else []  # the predictions made at selection
        self._store_records(step, [] if replayed else records_from_groups(
            step, samples, groups, scores, row_advantages(advantages, train_mask), keep, t_gen, self._prompt_text,
            [{"p_hat": p} for p in p_hats] if p_hats else None), replayed, flat)
        correct_flat = (torch.tensor(scores.get("accuracy", scores["total"])) >= 1.0).tolist()
        control_metrics = self._observe(
            samples, [scores["total"][offsets[g]:offsets[g + 1]] for g in range(len(samples))],
            [correct_flat[offsets[g]:offsets[g + 1]] for g in range(len(samples))], p_hats, correct_flat,
            [c.features for c in flat] if self.pruner is not None and self.pruner.quality_head is not None else [])
        if self.pruner is not None:
            control_metrics.update(self._prune_metrics(p_hats, pruned, samples))
        t1 = time.perf_counter()
        update_metrics = {}
        if self._update_anywhere(bool(keep.any())):
            update_metrics = self._update(samples, flat, advantages, keep, group_ids, scores, train_mask)
            if hasattr(self.engine, "sync_weights"):  # a colocated vLLM engine samples the next step from these
                self.engine.sync_weights(self.model)
        t_update = time.perf_counter() - t1
        lengths = [len(c.token_ids) for c in flat]
        metrics: dict[str, float] = {f"reward/{k}": sum(v) / len(v) for k, v in scores.items()}
        zero_spread = sum(1 for g in range(len(samples))
                          if totals[offsets[g]:offsets[g + 1]].std(unbiased=False) == 0)
        metrics.update({
            "response_length": sum(lengths) / len(lengths),
            "truncated_frac": sum(c.finish_reason == "length" for c in flat) / len(flat),
            "frac_groups_nonzero_std": 1 - zero_spread / len(samples),
            "kept_frac": float(keep.float().mean()),
            "lr": self._lr(),
            "time/generate_s": t_gen, "time/score_s": t_score, "time/update_s": t_update,
            "tokens_per_s": sum(lengths) / max(t_gen, 1e-9),
            **{f"adv/{k}": float(v) for k, v in adv.metrics.items() if isinstance(v, (int, float))},
            **update_metrics,
        })
        if self.tree is not None:
            owned = train_mask if train_mask is not None else tree_layout(groups, max(lengths)).train_mask
            decoded = int(owned.sum())
            metrics.update({"tree/leaves": float(len(flat)), "tree/decoded_tokens": float(decoded),
                            "tree/leaf_tokens": float(sum(lengths)),
                            "tree/decode_saving": 1.0 - decoded / max(1, sum(lengths))})
        if cfg.rollout.controller != "none" or self.pruner is not None:
            metrics.update({"rollouts/total": float(len(flat)), "rollouts/group_size_min": float(min(sizes)),
                            "rollouts/group_size_max": float(max(sizes)), **control_metrics})
        return metrics

    def _observe(self, samples: list[Sample], rewards: list[list[float]], correct: list[list[bool]],
                 p_hats: list[float], correct_flat: list[bool], features: list) -> dict[str, float]:
        """The controller and the pruner learn from the step's outcomes. With several processes every rank
        observes every rank's outcomes (gathered, in rank order), so their states stay identical on all ranks
        and the checkpoint rank 0 writes holds what each of them knows."""
        if self.cfg.rollout.controller == "none" and self.pruner is None:
            return {}
        if self.train_engine.world_size > 1:
            parts = all_gather_objects((samples, rewards, correct, p_hats, correct_flat, features))
            samples, rewards, correct, p_hats, correct_flat, features = ([x for part in parts for x in part[i]]
                                                                         for i in range(6))
        metrics = self.controller.observe(samples, rewards, correct)
        if self.pruner is not None:
            metrics.update(self.pruner.observe(p_hats, correct_flat, features))
        return metrics

    def _lr(self) -> float:
        te = self.train_engine
        return self.scheduler.get_last_lr()[0] if te.backend != "deepspeed" else te.optimizer.param_groups[0]["lr"]

    def _store_records(self, step: int, records: list[RolloutRecord], replayed,
                       completions: list[Completion] | None = None) -> None:
        """Append a fresh step's rollouts (every rank's, gathered, in rank order) to the store; rank 0 writes.
        With ARRoL's learned head, the survivors' hidden states go beside it (``prune_features/step-N.pt``, by
        rollout id), so that a resumed run refits the head on the replayed steps as the killed run did."""
        if replayed:
            return
        te = self.train_engine
        features = None
        if self.pruner is not None and self.pruner.quality_head is not None and completions is not None:
            features = {r.rollout_id: c.features for r, c in zip(records, completions) if c.features is not None}
        gathered = all_gather_objects((records, features)) if te.world_size > 1 else [(records, features)]
        if te.is_main:
            everything = [r for part, _ in gathered for r in part]
            if everything:
                self.store.append(everything)
            states = {k: v for _, part in gathered if part for k, v in part.items()}
            if states:
                buffer = io.BytesIO()
                torch.save(states, buffer)
                atomic_write_bytes(self._features_path(step), buffer.getvalue())

    def _features_path(self, step: int) -> Path:
        return self.run_dir / "prune_features" / f"step-{step:06d}.pt"

    def _stored_features(self, step: int) -> dict[str, torch.Tensor]:
        """The hidden states stored for a replayed step (empty without a learned head or the file)."""
        path = self._features_path(step)
        if self.pruner is None or self.pruner.quality_head is None or not path.exists():
            return {}
        return torch.load(path, map_location="cpu", weights_only=True)

    def _update_anywhere(self, local: bool) -> bool:
        """Whether any rank has rows to learn from: the ranks update together or not at all."""
        if self.train_engine.world_size == 1:
            return local
        return all_reduce_max(float(local)) > 0

    def _replay_share(self, step: int, samples: list[Sample], groups: list[list[Completion]]
                      ) -> tuple[list[Sample], list[list[Completion]]]:
        """This rank's stored groups of ``step``: ordered as the sampler ordered the prompts, then
        ``[rank::W]`` (uneven when prompts were set aside; the update pads the shorter ranks)."""
        te = self.train_engine
        order = {s.problem_id: i for i, s in reversed(list(enumerate(self.sampler.batch(step))))}
        pairs = sorted(zip(samples, groups), key=lambda sg: order.get(sg[0].problem_id, len(order)))
        mine = shard(pairs, te.rank, te.world_size, require_even=False)
        return [s for s, _ in mine], [g for _, g in mine]

    def _idle_update(self) -> None:
        """A rank without rows this step still runs the update's collectives: the same number of micro-batches
        (zero-weighted passes over a micro-batch kept from an earlier update) and the optimiser step."""
        te, cfg = self.train_engine, self.cfg
        all_reduce_sum(0.0)  # the token count (matches _update's calls)
        pieces = int(all_reduce_max(0.0))
        if self._spare is None:
            from veripo.errors import VeripoError

            raise VeripoError(f"rank {te.rank}: none of this process's prompts could be used before its first "
                              "update, so it has nothing to run the other processes' update with; check the "
                              "skipped prompts' videos")
        temperature = cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
        self.model.train()
        for _ in range(cfg.algo.ppo_epochs):
            for i in range(pieces):
                with te.accumulating(last=i == pieces - 1):
                    logps, _ = completion_logps(te.model, self._spare, temperature)
                    te.backward((logps * 0.0).sum())
            te.step(cfg.optim.grad_clip)
        if hasattr(self.engine, "sync_weights"):
            self.engine.sync_weights(self.model)

    def _prune_metrics(self, kept_p_hats: list[float], pruned: list[list[Completion]],
                       samples: list[Sample]) -> dict[str, float]:
        """What pruning did this step (fresh steps only: the pruned rollouts are not stored). ``kept_p_hats``: the
        survivors' predicted success; ``pruned`` holds one list per prompt per generation phase, in prompt order;
        mid-generation, they are unfinished heads."""
        if not pruned:
            return {}
        gone = [c for g in pruned for c in g]
        kept = len(kept_p_hats)
        out = {"prune/pool_rollouts": float(kept + len(gone)), "prune/pruned_rollouts": float(len(gone)),
               "prune/kept_p_hat": sum(kept_p_hats) / kept,
               "prune/pruned_tokens": float(sum(len(c.token_ids) for c in gone))}
        if gone:
            out["prune/pruned_p_hat"] = sum(self.pruner.p_hat(gone)) / len(gone)
            if self.pruner.mode == "posthoc":  # finished rollouts: what the pruned ones would have earned
                gone_samples = [samples[i % len(samples)] for i, g in enumerate(pruned) for _ in g]
                out["prune/pruned_reward"] = sum(compute_rewards([c.text for c in gone], gone_samples,
                                                                 self.cfg.reward)["total"]) / len(gone)
        return out

    def _prompt_text(self, sample: Sample) -> str:
        if hasattr(self.engine, "prompt_text"):
            return self.engine.prompt_text(sample)
        from veripo.prompts import question_text

        return question_text(sample)

    def _ref_context(self):
        if self.cfg.algo.beta > 0 and self.ref_model is None:
            return self.model.disable_adapter()
        return nullcontext()

    def _update(self, samples, flat, advantages, keep, group_ids, scores, train_mask=None) -> dict[str, float]:
        """``train_mask`` [N, C] (tree rollouts with ``branch``): the completion tokens each row trains."""
        cfg = self.cfg
        prompts = self._prompts(samples)
        index = group_ids.tolist()
        batch = build_sequences(prompts, index, [c.token_ids or [self.tokenizer.pad_token_id] for c in flat],
                                self.tokenizer.pad_token_id)
        if train_mask is not None:
            batch.completion_mask = batch.completion_mask * train_mask
        device = model_device(self.model)
        batch.model_inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.model_inputs.items()}
        batch.completion_ids, batch.completion_mask = batch.completion_ids.to(device), batch.completion_mask.to(device)
        n = len(batch)
        chunks = micro_batches(group_ids.tolist(), cfg.optim.micro_batch_size,
                               whole_groups=cfg.algo.policy_loss == "drpo")  # DRPO normalises within groups
        mbs = max(stop - start for start, stop in chunks)
        temperature = cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
        ref_logps = old_logps = None
        if cfg.algo.beta > 0:
            with torch.no_grad(), self._ref_context():
                ref_logps, _ = completion_logps(self.ref_model or self.model, batch, temperature, mbs)
        if cfg.algo.ppo_epochs > 1:
            with torch.no_grad():
                old_logps, _ = completion_logps(self.model, batch, temperature, mbs)
        mask = batch.completion_mask
        te = self.train_engine
        total_tokens = float((mask * keep.to(device)[:, None]).sum())
        accum = len(chunks)
        if te.world_size > 1:  # global token count; every rank runs as many micro-batches as the busiest one
            total_tokens = all_reduce_sum(total_tokens)
            accum = int(all_reduce_max(float(accum)))
        pieces = list(chunks) + [chunks[-1]] * (accum - len(chunks))  # repeats are zero-weighted
        self._spare = batch.slice(*chunks[-1])
        advantages = advantages.to(device)
        binary = torch.tensor(scores.get("accuracy", scores["total"]), device=device) >= 1.0
        sums: dict[str, float] = {}
        entropy_sum = 0.0
        self.model.train()
        for _ in range(cfg.algo.ppo_epochs):
            for i, (start, stop) in enumerate(pieces):
                part = batch.slice(start, stop)
                with te.accumulating(last=i == len(pieces) - 1):
                    logps, entropy = completion_logps(te.model, part, temperature, with_entropy=True)
                    loss, m = self.policy_loss(
                        logps=logps, old_logps=None if old_logps is None else old_logps[start:stop],
                        advantages=advantages[start:stop], mask=part.completion_mask,
                        ref_logps=None if ref_logps is None else ref_logps[start:stop],
                        keep_mask=keep[start:stop].to(device), clip_low=cfg.algo.clip_low,
                        clip_high=cfg.algo.clip_high, dual_clip=cfg.algo.dual_clip, beta=cfg.algo.beta,
                        loss_agg_mode=cfg.algo.loss_agg_mode, num_items_in_batch=total_tokens,
                        num_processes=te.world_size, grad_accum_steps=accum, steps_per_generation=accum,
                        max_completion_length=cfg.rollout.max_new_tokens,
                        rewards=binary[start:stop].float(), group_ids=group_ids[start:stop].to(device),
                        **cfg.algo.loss_kwargs)
                    te.backward(loss if i < len(chunks) else loss * 0.0)  # a repeat only keeps the ranks in step
                if i >= len(chunks):
                    continue
                pm = part.completion_mask
                entropy_sum += float((entropy * pm).sum())
                for k, v in m.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * (stop - start) / n
            grad_norm = te.step(cfg.optim.grad_clip)
        sums = {k: v / cfg.algo.ppo_epochs for k, v in sums.items()}
        sums["grad_norm"] = grad_norm
        sums["entropy"] = entropy_sum / max(1.0, float(mask.sum())) / cfg.algo.ppo_epochs
        return sums
