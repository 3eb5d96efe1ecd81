"""The GRPO stage's rollout phase, in the four GFCR steps (Generate, Filter, Control, Replay):

    batch   = phase.run(step, replayed)     # Control: the step's prompts and rollouts per prompt (controller);
                                            # Generate: groups, trees or ARRoL-pruned pools (engine);
                                            # Filter: rewards per component, correctness (reward spec);
                                            # DAPO's refill (max_gen_batches > 1): more prompts until the
                                            # step's groups all have reward spread
    metrics = phase.record(batch, adv)      # Replay: the step's rollouts appended to rollouts.jsonl before the
                                            # update; the controller and the pruner observe the outcomes

``RolloutBatch`` carries everything the rest of the step reads, in one shape: the prompts (one per group), the
groups of completions (token ids, sampling log-probs), the rewards per rollout, the group of each rollout and
its correctness, computed once here.

Determinism: each step's random stream is a function of ``(seed, step, rank)`` (``step_seed``), set at the start
of the step whether it is sampled or replayed, so a resumed run samples exactly what the killed run would have:
the random state never depends on how many steps ran in this process.

Several processes: the controller picks the step's prompts once (its state is identical on every rank), each rank
samples its share ``prompts[rank::W]``; the ranks' records are gathered and rank 0 appends them; the controller and
the pruner observe every rank's outcomes.
"""
from __future__ import annotations

import dataclasses
import io
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from veripo.data.schema import Sample
from veripo.errors import VideoError
from veripo.prompts import question_text
from veripo.records import RolloutRecord
from veripo.rewards import compute_rewards, is_correct
from veripo.rollout.cheap_pool import CheapPool
from veripo.rollout.partial import generate_groups
from veripo.rollout.records import groups_from_records, records_from_groups
from veripo.rollout.store import RolloutStore
from veripo.rollout.tree import TreeShape, grow_trees
from veripo.generation.types import Completion, SamplingParams
from veripo.train.distributed import all_gather_objects, shard
from veripo.io_utils import atomic_write_bytes

log = logging.getLogger(__name__)


def group_index(sizes: Sequence[int]) -> torch.Tensor:
    """[sum(sizes)] the group of each rollout, for consecutive groups of ``sizes`` (the one place group ids are made)."""
    return torch.arange(len(sizes)).repeat_interleave(torch.tensor(list(sizes), dtype=torch.long))


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The torch seed of one step on one rank: independent streams per step and rank, the same after a resume."""
    return int(np.random.default_rng([seed, step, rank]).integers(2 ** 62))


@dataclasses.dataclass
class RolloutBatch:
    """One step's rollouts in one shape (rollouts in group order throughout)."""

    step: int
    samples: list[Sample]                  # one per group
    groups: list[list[Completion]]         # the rollouts of each prompt
    scores: dict[str, list[float]]         # reward name -> one value per rollout ("total" included)
    correct: list[bool]                    # per rollout: is_correct(accuracy) (the total when there is no accuracy)
    replayed: bool                         # read back from the store instead of sampled
    generate_s: float = 0.0
    score_s: float = 0.0
    p_hats: list[float] = dataclasses.field(default_factory=list)        # ARRoL: predicted success at selection
    pruned: list[list[Completion]] = dataclasses.field(default_factory=list)  # ARRoL: what selection dropped
    prompts: Any = None                    # the processor batch, when generation built one the update can reuse
    off_policy: bool = False               # sampled by a cheaper engine than the policy (Sol-RL's int8 pool)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # the phase's own (refill, Sol-RL's pool)

    @property
    def sizes(self) -> list[int]:
        return [len(g) for g in self.groups]

    @property
    def flat(self) -> list[Completion]:
        return [c for g in self.groups for c in g]

    @property
    def group_ids(self) -> torch.Tensor:
        """[N] the group (prompt) of each rollout."""
        return group_index(self.sizes)

    @property
    def rollout_samples(self) -> list[Sample]:
        """The prompt of each rollout."""
        return [s for s, g in zip(self.samples, self.groups) for _ in g]

    def per_group(self, values: Sequence[Any]) -> list[list[Any]]:
        """A per-rollout list cut into one list per group."""
        return cut_groups(values, self.sizes)

    def __len__(self) -> int:
        return sum(self.sizes)


def score_rollouts(groups: Sequence[Sequence[Completion]], samples: Sequence[Sample], reward: Any
                   ) -> tuple[dict[str, list[float]], list[bool]]:
    """The Filter step's signals: rewards per component (and total) and correctness, per rollout."""
    flat = [c for g in groups for c in g]
    scores = compute_rewards([c.text for c in flat], [s for s, g in zip(samples, groups) for _ in g], reward,
                             token_counts=[len(c.token_ids) for c in flat])
    return scores, [is_correct(a) for a in scores.get("accuracy", scores["total"])]


class RolloutPhase:
    """Generate, filter, control and replay for the GRPO trainer (see the module doc).

    ``dist`` is the trainer's :class:`veripo.train.distributed.TrainEngine` (rank, world size, ZeRO-3 gathering);
    ``skipped`` collects the prompts set aside (unreadable video), named."""

    def __init__(self, engine: Any, sampler: Any, controller: Any, pruner: Any, tree: TreeShape | None,
                 params: SamplingParams, reward: Any, store: RolloutStore, run_dir: str | Path, seed: int, dist: Any,
                 max_gen_batches: int = 1, pool: CheapPool | None = None):
        self.engine, self.sampler, self.controller, self.pruner, self.tree = engine, sampler, controller, pruner, tree
        self.pool = pool
        self.params, self.reward, self.store, self.seed, self.dist = params, reward, store, seed, dist
        self.max_gen_batches = max_gen_batches  # > 1: DAPO's refill (see _refill)
        self.run_dir = Path(run_dir)
        self.skipped: list[str] = []
        self._refill_metrics: dict[str, float] = {}
        self._step_prompts: tuple[list[Sample], dict[str, Any]] | None = None

    @property
    def learned_head(self) -> bool:
        return self.pruner is not None and self.pruner.quality_head is not None

    # ------------------------------------------------------------------------------------- the phase
    def run(self, step: int, replayed: list[RolloutRecord] | None = None) -> RolloutBatch:
        """The step's rollouts (sampled, or the stored ones of a replayed step) with their rewards."""
        import time

        te = self.dist
        torch.manual_seed(step_seed(self.seed, step, te.rank))
        self._refill_metrics = {}
        t0 = time.perf_counter()
        pruned: list[list[Completion]] = []
        if replayed:
            samples, groups = groups_from_records(replayed, self._stored_features(step))
            if te.world_size > 1:  # this rank's share, in the order the sampler gave the prompts
                samples, groups = self._replay_share(step, samples, groups)
        else:
            prompts = self.controller.select_prompts(step, self.sampler.batch(step))
            if te.world_size > 1:
                prompts = shard(prompts, te.rank, te.world_size)
            with te.for_generation():  # ZeRO-3: the whole model on every rank while it samples
                samples, groups = self._sample(step, prompts, pruned)
                if self.max_gen_batches > 1 and samples:
                    samples, groups = self._refill(step, samples, groups, pruned)
        t1 = time.perf_counter()
        scores, correct = score_rollouts(groups, samples, self.reward) if samples else ({"total": []}, [])
        batch = RolloutBatch(step, samples, groups, scores, correct, bool(replayed), generate_s=t1 - t0,
                             score_s=time.perf_counter() - t1, pruned=pruned, metrics=dict(self._refill_metrics))
        if self.pool is not None:
            batch.off_policy = self.pool.cfg.quantize != "none"
            if samples and not replayed:  # the stored rollouts of a replayed step are the subset already
                keep_pool_subset(batch, self.pool)
        if samples:
            batch.prompts = self._cached_prompts(samples).get("update")
            if self.pruner is not None:
                batch.p_hats = self.pruner.p_hat(batch.flat)  # the predictions made at selection
        return batch

    def record(self, batch: RolloutBatch, advantages: torch.Tensor | None, kept: torch.Tensor | None
               ) -> dict[str, float]:
        """Replay: append a fresh step's rollouts to the store (with their advantage, one per rollout, and whether
        the update uses them), then let the controller and the pruner observe the outcomes (fresh and replayed
        steps alike). Every rank calls this, with or without rollouts of its own."""
        records: list[RolloutRecord] = []
        if not batch.replayed and batch.samples:
            extras = [{"p_hat": p} for p in batch.p_hats] if batch.p_hats else None
            records = records_from_groups(batch.step, batch.samples, batch.groups, batch.scores, advantages, kept,
                                          batch.generate_s, self.prompt_text, extras)
        if not batch.replayed:
            self._store(batch.step, records, batch.flat)
        metrics = self._observe(batch)
        if self.pruner is not None and batch.samples:
            metrics.update(self._prune_metrics(batch))
        return metrics

    def prompts_for_update(self, batch: RolloutBatch) -> Any:
        """The processor batch of the step's prompts, built once (shared with generation on the HF engine)."""
        if batch.prompts is None:
            cache = self._cached_prompts(batch.samples)
            cache["update"] = batch.prompts = self.engine.prompt_batch(batch.samples)
        return batch.prompts

    def prompt_text(self, sample: Sample) -> str:
        """The prompt a record stores: the user text the policy saw (question, options, instruction), the same on
        every engine (the chat template around it is the checkpoint's)."""
        return question_text(sample, getattr(self.engine, "reasoning", True))

    # ------------------------------------------------------------------------------------- generate / control
    def _cached_prompts(self, samples: list[Sample]) -> dict[str, Any]:
        if self._step_prompts is None or self._step_prompts[0] is not samples:
            self._step_prompts = (samples, {})  # holds `samples`, so its identity cannot be reused by a new list
        return self._step_prompts[1]

    def _generation_batch(self, samples: list[Sample]) -> Any:
        """The step's prompts processed once for generation: ``engine.partial_batch`` on an engine that continues
        partial rollouts (the HF engine's is the processor batch the update reads too), else None (``generate``)."""
        from veripo.prompt_batch import PromptBatch
        from veripo.rollout.engine import capabilities

        cache = self._cached_prompts(samples)
        if "generate" not in cache:
            batch = self.engine.partial_batch(samples) if capabilities(self.engine).continues_partial else None
            cache["generate"] = batch
            if isinstance(batch, PromptBatch):
                cache.setdefault("update", batch)
        return cache["generate"]

    def _generate(self, step: int, samples: list[Sample], sizes: list[int], call: int,
                  pruned_out: list[list[Completion]]) -> list[list[Completion]]:
        """``sizes[i]`` rollouts for ``samples[i]``: a tree of ``group_size`` leaves each with tree rollouts; with
        ARRoL pruning, ``sizes[i]`` survivors of a larger pool (the pruned go to ``pruned_out``, for metrics)."""
        batch = self._generation_batch(samples)
        if self.tree is not None:
            return grow_trees(self.engine, samples, self.tree, self.params, batch)
        if self.pruner is not None:
            kept, pruned = self.pruner.generate(self.engine, step, samples, sizes, self.params, call, batch)
            pruned_out.extend(pruned)
            return kept
        if self.pool is not None:  # Sol-RL: a pool of candidates from the cheap engine; run() keeps a subset
            return generate_groups(self.pool.engine_for_step(self.engine, step), samples,
                                   [self.pool.pool_size] * len(samples), self.params, batch)
        return generate_groups(self.engine, samples, sizes, self.params, batch)

    def _usable(self, samples: list[Sample]) -> list[Sample]:
        """The prompts whose video can be read; the others are set aside (named, counted)."""
        good = []
        for s in samples:
            try:
                self.engine.prompt_batch([s])
                good.append(s)
            except VideoError as e:
                log.warning("prompt %s set aside: %s", s.problem_id, e)
                self.skipped.append(f"{s.problem_id}: {e}")
        return good

    def _sample(self, step: int, samples: list[Sample], pruned: list[list[Completion]]
                ) -> tuple[list[Sample], list[list[Completion]]]:
        """Generate the controller's allocation of rollouts per prompt (``group_size`` each without one); a
        prompt whose video cannot be read is set aside and the survivors' allocation redone; a controller that
        refines (XRPO) spends the rest of the budget where the first phase's rewards say it helps most."""
        try:
            groups = self._generate(step, samples, self.controller.allocate(step, samples), 0, pruned)
        except VideoError:
            samples = self._usable(samples)
            if not samples:
                return [], []
            pruned.clear()
            groups = self._generate(step, samples, self.controller.allocate(step, samples), 0, pruned)
        extra = self.controller.budget(samples) - sum(len(g) for g in groups)
        if extra > 0 and self.controller.refines:
            scores, _ = score_rollouts(groups, samples, self.reward)
            first = cut_groups(scores["total"], [len(g) for g in groups])
            more = self._generate(step, samples, self.controller.refine(step, samples, first, extra), 1, pruned)
            groups = [g + m for g, m in zip(groups, more)]
        return samples, groups

    def _refill(self, step: int, samples: list[Sample], groups: list[list[Completion]],
                pruned: list[list[Completion]]) -> tuple[list[Sample], list[list[Completion]]]:
        """DAPO dynamic sampling with refill (Yu et al. 2025, arXiv 2503.14476; verl ``max_num_gen_batches``): keep
        the groups whose totals differ (``dynamic_sampling_mask``) and sample more prompts (``sampler.refill``) until
        there are as many as the step's prompts, in at most ``max_gen_batches`` batches; the surplus and the groups
        without spread are discarded (never stored). Short after the last batch: the groups found, with a warning."""
        from veripo.algos.filters import dynamic_sampling_mask

        want, taken = len(samples), list(samples)
        kept: list[tuple[Sample, list[Completion]]] = []
        batches = 1
        while True:
            scores, _ = score_rollouts(groups, samples, self.reward)
            sizes = [len(g) for g in groups]
            spread = dynamic_sampling_mask(torch.tensor(scores["total"]), group_index(sizes))
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            kept += [(s, g) for s, g, at in zip(samples, groups, starts) if bool(spread[at])]
            if len(kept) >= want or batches >= self.max_gen_batches:
                break
            samples = self.sampler.refill(step, batches, taken)
            if not samples:
                break
            taken += samples
            batches += 1
            samples, groups = self._sample(step, samples, pruned)
        if len(kept) < want:
            log.warning("step %d: dynamic sampling found %d of %d groups with reward spread in %d generation "
                        "batches (algo.max_num_gen_batches); training on those", step, len(kept), want, batches)
        self._refill_metrics = {"dynamic_sampling/gen_batches": float(batches),
                                "dynamic_sampling/groups_short": float(max(0, want - len(kept)))}
        kept = kept[:want]
        return [s for s, _ in kept], [g for _, g in kept]

    def _replay_share(self, step: int, samples: list[Sample], groups: list[list[Completion]]
                      ) -> tuple[list[Sample], list[list[Completion]]]:
        """This rank's stored groups of ``step``: ordered as the sampler ordered the prompts, then
        ``[rank::W]`` (uneven when prompts were set aside; the update pads the shorter ranks)."""
        te = self.dist
        order = {s.problem_id: i for i, s in reversed(list(enumerate(self.sampler.batch(step))))}
        pairs = sorted(zip(samples, groups), key=lambda sg: order.get(sg[0].problem_id, len(order)))
        mine = shard(pairs, te.rank, te.world_size, require_even=False)
        return [s for s, _ in mine], [g for _, g in mine]

    # ------------------------------------------------------------------------------------- replay / observe
    def _store(self, step: int, records: list[RolloutRecord], completions: list[Completion]) -> None:
        """Append a fresh step's rollouts (every rank's, gathered, in rank order) to the store; rank 0 writes.
        Each record carries ``step_rollouts``, the step's count, so a resume can tell a step torn by a kill (fewer
        records) and sample it again. With ARRoL's learned head, the survivors' hidden states go beside the store
        (``prune_features/step-N.pt``, by rollout id), so a resumed run refits the head as the killed run did."""
        te = self.dist
        features = None
        if self.learned_head:
            features = {r.rollout_id: c.features for r, c in zip(records, completions) if c.features is not None}
        gathered = all_gather_objects((records, features)) if te.world_size > 1 else [(records, features)]
        if not te.is_main:
            return
        everything = [r for part, _ in gathered for r in part]
        for r in everything:
            r.extra["step_rollouts"] = len(everything)
        states = {k: v for _, part in gathered if part for k, v in part.items()}
        if states:  # written first: a kill between the two leaves a torn step, which the resume samples again
            buffer = io.BytesIO()
            torch.save(states, buffer)
            atomic_write_bytes(self._features_path(step), buffer.getvalue())
        if everything:
            self.store.append(everything)

    def _features_path(self, step: int) -> Path:
        return self.run_dir / "prune_features" / f"step-{step:06d}.pt"

    def _stored_features(self, step: int) -> dict[str, torch.Tensor]:
        """The hidden states stored for a replayed step (empty without a learned head or the file)."""
        path = self._features_path(step)
        if not self.learned_head or not path.exists():
            return {}
        return torch.load(path, map_location="cpu", weights_only=True)

    def _observe(self, batch: RolloutBatch) -> dict[str, float]:
        """The controller and the pruner learn from the step's outcomes. With several processes every rank
        observes every rank's outcomes (gathered, in rank order), so their states stay identical on all ranks
        and the checkpoint rank 0 writes holds what each of them knows."""
        if self.controller.name == "none" and self.pruner is None:
            return {}
        features = [c.features for c in batch.flat] if self.learned_head else []
        mine = (batch.samples, batch.per_group(batch.scores["total"]), batch.per_group(batch.correct),
                batch.p_hats, batch.correct, features)
        if self.dist.world_size > 1:
            parts = all_gather_objects(mine)
            mine = tuple([x for part in parts for x in part[i]] for i in range(6))
        samples, rewards, correct, p_hats, correct_flat, features = mine
        metrics = self.controller.observe(samples, rewards, correct)
        if self.pruner is not None:
            metrics.update(self.pruner.observe(p_hats, correct_flat, features))
        return metrics

    def _prune_metrics(self, batch: RolloutBatch) -> dict[str, float]:
        """What pruning did this step (fresh steps only: the pruned rollouts are not stored). ``batch.pruned``
        holds one list per prompt per generation phase, in prompt order; mid-generation, unfinished heads."""
        if not batch.pruned:
            return {}
        gone = [c for g in batch.pruned for c in g]
        kept = len(batch.p_hats)
        out = {"prune/pool_rollouts": float(kept + len(gone)), "prune/pruned_rollouts": float(len(gone)),
               "prune/kept_p_hat": sum(batch.p_hats) / kept,
               "prune/pruned_tokens": float(sum(len(c.token_ids) for c in gone))}
        if gone:
            out["prune/pruned_p_hat"] = sum(self.pruner.p_hat(gone)) / len(gone)
            if self.pruner.mode == "posthoc":  # finished rollouts: what the pruned ones would have earned
                gone_samples = [batch.samples[i % len(batch.samples)] for i, g in enumerate(batch.pruned) for _ in g]
                out["prune/pruned_reward"] = sum(compute_rewards([c.text for c in gone], gone_samples,
                                                                 self.reward)["total"]) / len(gone)
        return out


def keep_pool_subset(batch: RolloutBatch, pool: CheapPool) -> None:
    """Sol-RL's selection, in place: each group keeps the pool's ``keep_top`` best and ``keep_bottom`` worst
    candidates by total reward (their rewards are the pool's: the tokens do not change), and ``batch.metrics``
    says what the pool held."""
    totals = batch.scores["total"]
    keep = pool.subset(totals, batch.group_ids).tolist()
    kept_totals = [t for t, k in zip(totals, keep) if k]
    batch.metrics.update({"pool/candidates": float(len(totals)), "pool/reward_mean": sum(totals) / len(totals),
                          "pool/subset_reward_mean": sum(kept_totals) / max(1, len(kept_totals)),
                          "pool/quantize_s": pool.last_quantize_s})
    batch.groups = [[c for c, k in zip(g, ks) if k] for g, ks in zip(batch.groups, batch.per_group(keep))]
    batch.scores = {name: [v for v, k in zip(values, keep) if k] for name, values in batch.scores.items()}
    batch.correct = [c for c, k in zip(batch.correct, keep) if k]


def cut_groups(values: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]]:
    """A flat per-rollout list cut into consecutive groups of ``sizes``."""
    out, at = [], 0
    for n in sizes:
        out.append(list(values[at: at + n]))
        at += n
    return out
