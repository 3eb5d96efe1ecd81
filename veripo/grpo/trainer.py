"""The GRPO stage: rollout phase -> advantages -> store -> update, once per step.

    batch   = self.rollout.run(step, replayed)         # Control, Generate, Filter (veripo/rollout/phase.py)
    adv     = step_advantages(...)                     # estimator from the registry, DAPO dynamic sampling, GDRO
    metrics = self.rollout.record(batch, adv)          # Replay: rollouts.jsonl *before* the update; observers
    update  = self._update(batch, adv)                 # policy loss over micro-batches, clip, AdamW, schedule

* the rollout phase (veripo/rollout/phase.py): the sampler's prompts for the step (a pure function of the step),
  which a controller (``rollout.controller``, veripo/rollout/control.py) may replace and size (GDRO, XRPO:
  budget-neutral); the engine samples groups, trees with shared prefixes (``rollout.tree_branches``,
  veripo/rollout/tree.py) or ARRoL-pruned pools (``rollout.prune=arrol``, veripo/rollout/prune.py); rewards per
  component and correctness; after a crash, the stored rollouts of that step are replayed instead;
* advantages from the configured estimator (veripo/grpo/advantage_step.py: ``branch`` reads the trees);
* every rollout is appended to ``rollouts.jsonl`` (what the verifier reads) before the update, and the controller
  and the pruner observe the outcomes (fresh and replayed steps alike: their state is the same after a resume);
* the update: the policy loss from the registry over micro-batches with gradient accumulation, clip, AdamW, the
  schedule; an engine that ``receives_weights`` (colocated vLLM) then gets the new weights.
Set-up, resume, checkpoints every ``run.save_every`` steps and the final policy: veripo/train/stage.py.

Several processes (``dist.backend`` ddp | deepspeed, veripo/train/distributed.py): each rank samples its share of
the step's prompts; the update runs the same number of micro-batches on every rank (zero-weighted repeats fill the
gap) through the wrapped model, with the dapo normaliser ``N = sum_r tokens_r / W`` per rank so that the averaged
gradient equals the one-process gradient; metrics are averaged over ranks and rank 0 writes them.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from veripo.algos import get_advantage_estimator, get_policy_loss
from veripo.data.schema import Sample, load_samples
from veripo.errors import ConfigError, DataError
from veripo.grpo.advantage_step import StepAdvantages, row_advantages, step_advantages
from veripo.grpo.config import GRPOConfig
from veripo.grpo.critic import ValueCritic, needs_values
from veripo.records import RolloutRecord
from veripo.algos.sol_rl import truncated_is_weights
from veripo.rollout.cheap_pool import CheapPool
from veripo.rollout.control import build_controller
from veripo.rollout.engine import EngineSpec, build_engine, capabilities
from veripo.rollout.partial import require_partial
from veripo.rollout.phase import RolloutBatch, RolloutPhase
from veripo.rollout.prune import build_pruner
from veripo.rollout.store import RolloutStore
from veripo.rollout.tree import TreeShape, tree_layout
from veripo.generation.types import SamplingParams
from veripo.sequences import SequenceBatch, build_sequences, completion_logps
from veripo.train.distributed import all_reduce_max, all_reduce_sum
from veripo.train.policy_setup import model_device
from veripo.train.prompt_tokens import prompt_token_counter
from veripo.train.sampler import PromptSampler
from veripo.train.stage import TrainingStage

log = logging.getLogger(__name__)


def engine_spec(cfg: GRPOConfig) -> EngineSpec:
    """The rollout engine the GRPO config asks for."""
    ro = cfg.rollout
    options: dict[str, Any] = {}
    if ro.engine == "vllm":
        options = {"gpu_memory_utilization": ro.vllm_gpu_memory_utilization, "max_model_len": ro.vllm_max_model_len,
                   "server_url": ro.vllm_server_url}
    return EngineSpec(name=ro.engine, model_path=cfg.model.path, video=cfg.video, batch_size=ro.batch_size,
                      max_sequences=ro.batch_size * ro.group_size, seed=cfg.run.seed, dtype=cfg.model.dtype,
                      options=options)


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


def hidden_size(model) -> int:
    """The policy's language-model width (what value heads read)."""
    config = model.config
    text = getattr(config, "text_config", None)
    return int(getattr(text, "hidden_size", None) or config.hidden_size)


def sampling_logps(rollouts: RolloutBatch, mask: torch.Tensor) -> torch.Tensor:
    """[N, C] the log-probs the engine recorded while sampling each token (0 beyond a rollout's end)."""
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    for i, c in enumerate(rollouts.flat):
        if c.logps:
            out[i, : len(c.logps)] = torch.tensor(c.logps, dtype=torch.float32)
    return out


def load_training_rows(cfg: GRPOConfig, errors: list[str], processor=None) -> list[Sample]:
    count = prompt_token_counter(processor) if processor is not None and cfg.data.max_prompt_tokens else None
    rows = load_samples(cfg.data.train_file, strict=cfg.data.strict, root=cfg.data.root, errors=errors,
                        max_prompt_chars=cfg.data.max_prompt_chars, max_prompt_tokens=cfg.data.max_prompt_tokens,
                        count_prompt_tokens=count)
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
    if cfg.algo.max_num_gen_batches > 1:
        raise ConfigError(f"algo.max_num_gen_batches={cfg.algo.max_num_gen_batches} (dynamic sampling refill) runs in "
                          "one process only: the ranks would need different numbers of generation rounds")
    if cfg.rollout.prompts_per_step % world_size:
        raise ConfigError(f"rollout.prompts_per_step={cfg.rollout.prompts_per_step} is not a multiple of the "
                          f"{world_size} processes: every process samples the same number of prompts")
    if needs_values(cfg.algo.advantage_estimator):
        raise ConfigError(f"algo.advantage_estimator={cfg.algo.advantage_estimator!r} trains value heads, which run "
                          "in one process only for now (their gradients are not averaged over processes)")


def tree_shape(cfg: GRPOConfig) -> TreeShape | None:
    """The configured tree of rollouts (None = independent rollouts), checked against the rest of the config."""
    ro = cfg.rollout
    if not ro.tree_branches:
        return None
    shape = TreeShape(tuple(int(b) for b in ro.tree_branches), int(ro.tree_segment_tokens))
    shape.check(ro.max_new_tokens, ro.group_size)
    for key, value in (("rollout.controller", ro.controller), ("rollout.prune", ro.prune)):
        if value != "none":
            raise ConfigError(f"rollout.tree_branches with {key}={value} is not supported: a tree fixes its own "
                              "number of leaves; use one or the other")
    return shape


class GRPOTrainer(TrainingStage):
    name = "grpo"

    def __init__(self, cfg: GRPOConfig, model=None, processor=None):
        super().__init__(cfg, model, processor)
        self.rows = load_training_rows(cfg, self.errors, self.processor)
        if not self.rows:
            raise DataError(f"{cfg.data.train_file}: no usable training rows ({len(self.errors)} bad)")
        ro = cfg.rollout
        self.sampler = PromptSampler(self.rows, ro.prompts_per_step, cfg.run.seed)
        self.controller = build_controller(ro.controller, self.rows, ro.group_size, ro.min_group_size, ro.max_group,
                                           cfg.run.seed, ro.controller_kwargs)
        self.pruner = build_pruner(ro.prune, cfg.run.seed, ro.prune_kwargs, self.rank)
        self.engine = build_engine(engine_spec(cfg), self.model, self.processor)
        self.tree = tree_shape(cfg)
        if self.tree is not None:
            require_partial(self.engine, "rollout.tree_branches")
        if self.pruner is not None:
            self.pruner.resolve_mode(self.engine)
        self.estimator = get_advantage_estimator(cfg.algo.advantage_estimator)
        self.policy_loss = get_policy_loss(cfg.algo.policy_loss)
        # the update's forwards go through train_engine.model (DDP / DeepSpeed wrapper); generation, reference and
        # old-policy passes use self.model
        self.setup_optimisation(cfg.run.steps)
        self.store = RolloutStore(self.out / "rollouts.jsonl")
        params = SamplingParams(temperature=ro.temperature, top_p=ro.top_p, top_k=ro.top_k,
                                max_new_tokens=ro.max_new_tokens, stop_at_answer=ro.stop_at_answer)
        pool = CheapPool(ro.cheap_pool, ro.group_size) if ro.cheap_pool.enabled else None
        self.rollout = RolloutPhase(self.engine, self.sampler, self.controller, self.pruner, self.tree, params,
                                    cfg.reward, self.store, self.out, cfg.run.seed, self.train_engine,
                                    max_gen_batches=cfg.algo.max_num_gen_batches, pool=pool)
        self.critic = None  # the value heads of ppo_gae / pdppo (veripo/grpo/critic.py)
        if needs_values(cfg.algo.advantage_estimator):
            self.critic = ValueCritic.create(cfg.algo.value_heads, cfg.algo.advantage_estimator,
                                             hidden_size(self.model), model_device(self.model))
        self._spare = None  # a micro-batch kept for zero-weighted passes when this rank has no rows of its own
        self._replay: dict[int, list[RolloutRecord]] = {}
        self.ref_model = None
        if cfg.algo.beta > 0 and not hasattr(self.model, "disable_adapter"):
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)

    def check_world(self, world_size: int) -> None:
        check_world(self.cfg, world_size)

    @property
    def skipped(self) -> list[str]:
        """Prompts set aside (unreadable video, ...), with the reason."""
        return self.rollout.skipped

    # ----------------------------------------------------------------------------------- stage hooks
    def state(self) -> dict[str, Any]:
        state = {"skipped": self.skipped, "controller": self.controller.state_dict()}
        if self.pruner is not None:
            state["pruner"] = self.pruner.state_dict()
        if self.critic is not None:
            state["critic"] = self.critic.state_dict()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.rollout.skipped[:] = list(state.get("skipped", []))
        if "controller" in state:
            self.controller.load_state_dict(state["controller"])
        if self.pruner is not None and "pruner" in state:
            self.pruner.load_state_dict(state["pruner"])
        if self.critic is not None and "critic" in state:
            self.critic.load_state_dict(state["critic"])

    def final_files(self, folder: Path) -> None:
        if self.critic is not None:
            self.critic.save(folder)

    def before_loop(self, start: int, resume: bool) -> None:
        """A fresh run owns its store; a resumed one replays the stored rollouts of the steps from ``start`` on
        (a step a kill left incomplete is dropped from the store and sampled again: the same rollouts, since each
        step's random stream depends on the step alone)."""
        te = self.train_engine
        if resume:
            if capabilities(self.engine).receives_weights:  # a colocated vLLM engine must see the restored policy
                self.engine.sync_weights(self.model)
            self._replay = self._stored_steps(start)
        elif self.store.path.exists() and te.is_main:
            self.store.path.unlink()
        te.barrier()

    def _stored_steps(self, start: int) -> dict[int, list[RolloutRecord]]:
        errors: list[str] = []
        stored = self.store.by_step(errors)
        for e in errors:
            log.warning("rollout store: %s (skipped)", e)
        replay = {s: recs for s, recs in stored.items() if s >= start}
        torn = [s for s, recs in sorted(replay.items())
                if any(int(r.extra.get("step_rollouts", len(recs))) != len(recs) for r in recs)]
        if torn or errors:
            keep_until = (torn[0] if torn else max(stored, default=start) + 1) - 1
            if torn:
                log.warning("rollout store: step %d was cut short by the kill (%d rollouts of %s); it is sampled "
                            "again", torn[0], len(replay[torn[0]]), replay[torn[0]][0].extra.get("step_rollouts"))
            if self.train_engine.is_main:
                self.store.truncate_after(keep_until)
            replay = {s: recs for s, recs in replay.items() if s <= keep_until}
        log.info("resuming at step %d; replaying stored rollouts of steps %s", start, sorted(replay))
        return replay

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        out = {"reward": f"{metrics['reward/total']:.2f}"}
        if "reward/accuracy" in metrics:
            out["acc"] = f"{metrics['reward/accuracy']:.2f}"
        return out

    def close_files(self) -> None:
        self.store.close()

    def summary(self, history: list[dict[str, float]], steps_done: int) -> dict[str, Any]:
        te = self.train_engine
        skipped = len(self.skipped) if te.world_size == 1 else int(all_reduce_sum(len(self.skipped)))
        summary = {"steps": steps_done, "final_policy": str(self.out / "final"),
                   "rollouts": str(self.store.path), "bad_rows": len(self.errors), "skipped_prompts": skipped}
        if te.world_size > 1:
            summary["processes"] = te.world_size
        if history:
            last = history[-min(5, len(history)):]
            for key in ("reward/total", "reward/accuracy", "reward/format", "response_length"):
                if key in last[0]:
                    summary[key + "/last5"] = sum(h[key] for h in last) / len(last)
        return summary

    # ----------------------------------------------------------------------------------------- step
    def step(self, step: int, replayed: list[RolloutRecord] | None = None) -> dict[str, float]:
        """One GRPO step: rollout phase -> advantages -> store -> update (``replayed``: the step's stored
        rollouts; by default those a resume found for this step)."""
        cfg, te = self.cfg, self.train_engine
        replayed = replayed if replayed is not None else self._replay.pop(step, None)
        batch = self.rollout.run(step, replayed)
        if not batch.samples:
            return self._idle_step(batch)
        seqs = self._sequences(batch)
        scored_logps = values = None
        if self.critic is not None:  # one no-grad forward: the policy's log-probs and the heads' values
            scored_logps, values = self.critic.estimate(self.model, seqs, self._temperature,
                                                        cfg.optim.micro_batch_size)
        adv = step_advantages(self.estimator, cfg.algo, cfg.reward, batch.scores, batch.groups,
                              self.controller.advantage_weights(batch.samples), correct=batch.correct,
                              values=values, response_mask=seqs.completion_mask)
        tokens = adv.train_mask if adv.train_mask is not None else seqs.completion_mask.cpu()
        control_metrics = self.rollout.record(batch, row_advantages(adv.advantages, tokens), adv.keep)
        t0 = time.perf_counter()
        update_metrics = {}
        if self._update_anywhere(bool(adv.keep.any())):
            update_metrics = self._update(batch, seqs, adv, scored_logps)
            self._sync_engine()
        if self.critic is not None:
            update_metrics.update(self.critic.update(adv.returns, seqs.completion_mask, adv.keep,
                                                     cfg.algo.ppo_epochs))
        return self._step_metrics(batch, adv, control_metrics, update_metrics, time.perf_counter() - t0)

    @property
    def _temperature(self) -> float:
        """The temperature the rollouts were sampled at, which their log-probs are scored at (greedy: 1)."""
        return self.cfg.rollout.temperature if self.cfg.rollout.temperature > 0 else 1.0

    def _sequences(self, rollouts: RolloutBatch) -> SequenceBatch:
        """The step's prompt + completion sequences on the model's device, built once."""
        pad = self.tokenizer.pad_token_id
        batch = build_sequences(self.rollout.prompts_for_update(rollouts), rollouts.group_ids.tolist(),
                                [c.token_ids or [pad] for c in rollouts.flat], pad,
                                share_prompts=self.cfg.optim.share_prompts)
        device = model_device(self.model)
        batch.model_inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.model_inputs.items()}
        batch.completion_ids, batch.completion_mask = batch.completion_ids.to(device), batch.completion_mask.to(device)
        return batch

    def _idle_step(self, batch: RolloutBatch) -> dict[str, float]:
        """Every prompt of this rank's share was set aside: take part in the step's collectives with nothing of
        its own (several processes), then report the skip."""
        if self.train_engine.world_size > 1:
            self.rollout.record(batch, None, None)
            if self._update_anywhere(False):
                self._idle_update()
        return {"reward/total": 0.0, "skipped_all": 1.0}

    def _sync_engine(self) -> None:
        if capabilities(self.engine).receives_weights:  # a colocated vLLM engine samples the next step from these
            self.engine.sync_weights(self.model)

    def _step_metrics(self, batch: RolloutBatch, adv: StepAdvantages, control_metrics: dict[str, float],
                      update_metrics: dict[str, float], update_s: float) -> dict[str, float]:
        flat, sizes = batch.flat, batch.sizes
        lengths = [len(c.token_ids) for c in flat]
        zero_spread = sum(1 for g in batch.per_group(batch.scores["total"]) if max(g) == min(g))
        metrics: dict[str, float] = {f"reward/{k}": sum(v) / len(v) for k, v in batch.scores.items()}
        metrics.update({
            "response_length": sum(lengths) / len(lengths),
            "truncated_frac": sum(c.finish_reason == "length" for c in flat) / len(flat),
            "frac_groups_nonzero_std": 1 - zero_spread / len(batch.samples),
            "kept_frac": float(adv.keep.float().mean()),
            "lr": self.train_engine.current_lr(),
            "time/generate_s": batch.generate_s, "time/score_s": batch.score_s, "time/update_s": update_s,
            "tokens_per_s": sum(lengths) / max(batch.generate_s, 1e-9),
            **batch.metrics,
            **{f"adv/{k}": float(v) for k, v in adv.metrics.items() if isinstance(v, (int, float))},
            **update_metrics,
        })
        if self.tree is not None:
            owned = adv.train_mask if adv.train_mask is not None else tree_layout(batch.groups, max(lengths)).train_mask
            decoded = int(owned.sum())
            metrics.update({"tree/leaves": float(len(flat)), "tree/decoded_tokens": float(decoded),
                            "tree/leaf_tokens": float(sum(lengths)),
                            "tree/decode_saving": 1.0 - decoded / max(1, sum(lengths))})
        if self.controller.name != "none" or self.pruner is not None:
            metrics.update({"rollouts/total": float(len(flat)), "rollouts/group_size_min": float(min(sizes)),
                            "rollouts/group_size_max": float(max(sizes)), **control_metrics})
        return metrics

    # --------------------------------------------------------------------------------------- update
    def _update_anywhere(self, local: bool) -> bool:
        """Whether any rank has rows to learn from: the ranks update together or not at all."""
        if self.train_engine.world_size == 1:
            return local
        return all_reduce_max(float(local)) > 0

    def _ref_context(self):
        if self.cfg.algo.beta > 0 and self.ref_model is None:
            return self.model.disable_adapter()
        return nullcontext()

    def _idle_update(self) -> None:
        """A rank without rows this step still runs the update's collectives: the same number of micro-batches
        (zero-weighted passes over a micro-batch kept from an earlier update) and the optimiser step."""
        te, cfg = self.train_engine, self.cfg
        all_reduce_sum(0.0)  # the token count (matches _update's calls)
        pieces = int(all_reduce_max(0.0))
        if self._spare is None:
            raise DataError(f"rank {te.rank}: none of this process's prompts could be used before its first "
                              "update, so it has nothing to run the other processes' update with; check the "
                              "skipped prompts' videos")
        temperature = self._temperature
        self.model.train()
        for _ in range(cfg.algo.ppo_epochs):
            for i in range(pieces):
                with te.accumulating(last=i == pieces - 1):
                    logps, _ = completion_logps(te.model, self._spare, temperature)
                    te.backward((logps * 0.0).sum())
            te.step(cfg.optim.grad_clip)
        self._sync_engine()


    def _update(self, rollouts: RolloutBatch, batch: SequenceBatch, adv: StepAdvantages,
                scored_logps: torch.Tensor | None = None) -> dict[str, float]:
        """The policy loss on the step's rollouts (``adv.train_mask`` [N, C], tree rollouts with ``branch``: the
        completion tokens each row trains). ``scored_logps``: the policy's log-probs of the sampled tokens before
        the update, when a value-based estimator's forward already computed them. Rollouts sampled by a cheaper
        engine (Sol-RL's int8 pool) are scored by the policy (PPO's ``old_logps``) and weighted by the truncated
        importance ratio pi_policy / pi_cheap."""
        cfg = self.cfg
        group_ids, keep = adv.group_ids, adv.keep
        device = model_device(self.model)
        if adv.train_mask is not None:  # a copy: the step's sequences stay as built (the critic reads them)
            batch = dataclasses.replace(batch, completion_mask=batch.completion_mask * adv.train_mask.to(device))
        n = len(batch)
        chunks = micro_batches(group_ids.tolist(), cfg.optim.micro_batch_size,
                               whole_groups=cfg.algo.policy_loss == "drpo")  # DRPO normalises within groups
        mbs = max(stop - start for start, stop in chunks)
        temperature = self._temperature
        ref_logps = is_weights = None
        old_logps = scored_logps
        if cfg.algo.beta > 0:
            with torch.no_grad(), self._ref_context():
                ref_logps, _ = completion_logps(self.ref_model or self.model, batch, temperature, mbs)
        if old_logps is None and (cfg.algo.ppo_epochs > 1 or rollouts.off_policy):
            with torch.no_grad():
                old_logps, _ = completion_logps(self.model, batch, temperature, mbs)
        mask = batch.completion_mask
        if rollouts.off_policy:
            is_weights = truncated_is_weights(old_logps, sampling_logps(rollouts, mask), mask,
                                              **self.rollout.pool.is_options)
        te = self.train_engine
        total_tokens = float((mask * keep.to(device)[:, None]).sum())
        total_rows = float(keep.sum())  # kept rows: the row modes' denominator over all micro-batches
        accum = len(chunks)
        if te.world_size > 1:  # global counts; every rank runs as many micro-batches as the busiest one
            total_tokens = all_reduce_sum(total_tokens)
            total_rows = all_reduce_sum(total_rows)
            accum = int(all_reduce_max(float(accum)))
        pieces = list(chunks) + [chunks[-1]] * (accum - len(chunks))  # repeats are zero-weighted
        self._spare = batch.slice(*chunks[-1])
        advantages = adv.advantages.to(device)
        binary = torch.tensor(rollouts.correct, device=device)
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
                        num_rows_in_batch=total_rows,
                        num_processes=te.world_size, grad_accum_steps=accum, steps_per_generation=accum,
                        max_completion_length=cfg.rollout.max_new_tokens,
                        rewards=binary[start:stop].float(), group_ids=group_ids[start:stop].to(device),
                        is_weights=None if is_weights is None else is_weights[start:stop],
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
