"""Sol-RL's two-precision exploration in the GRPO stage: a pool from an int8 copy of the policy, the contrastive
subset trained with full-precision log-probs and a truncated importance weight."""
from __future__ import annotations

import pytest
import torch

from veripo.errors import ConfigError
from veripo.grpo.trainer import GRPOTrainer
from veripo.io_utils import read_jsonl
from veripo.rollout.cheap_pool import CheapPool, CheapPoolConfig
from veripo.rollout.phase import RolloutBatch, keep_pool_subset
from veripo.generation.types import Completion

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import synth_task, task_kit, warm_policy  # noqa: F401
from test_grpo_trainer import grpo_cfg

POOL = ["rollout.cheap_pool.pool_size=8"]  # group_size 4: the 2 best and the 2 worst of 8 candidates per prompt


def completion(text: str) -> Completion:
    return Completion(text=text, token_ids=[1, 2], logps=[-0.1, -0.2], finish_reason="stop")


def test_the_subset_keeps_each_prompts_best_and_worst_with_their_own_rewards():
    """Spec A11's worked pool (rewards 0.1 .. 0.9, K = 2 + 2) in the phase's batch, next to a second prompt."""
    first = [0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4]
    second = [1.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5]
    totals = first + second
    groups = [[completion(f"p0-{i}") for i in range(8)], [completion(f"p1-{i}") for i in range(8)]]
    batch = RolloutBatch(0, [object(), object()], groups, {"total": totals, "accuracy": totals},
                         [t >= 0.5 for t in totals], replayed=False)
    keep_pool_subset(batch, CheapPool(CheapPoolConfig(pool_size=8, quantize="none"), group_size=4))
    assert [c.text for c in batch.groups[0]] == ["p0-0", "p0-1", "p0-5", "p0-6"]  # top {1, 6}, bottom {5, 0}
    assert [c.text for c in batch.groups[1]] == ["p1-0", "p1-1", "p1-2", "p1-3"]  # ties break by row
    assert batch.scores["total"] == [0.1, 0.9, 0.2, 0.8, 1.0, 1.0, 0.0, 0.0]
    assert batch.scores["accuracy"] == batch.scores["total"]
    assert batch.correct == [False, True, False, True, True, True, False, False]
    assert batch.metrics["pool/candidates"] == 16
    assert batch.metrics["pool/reward_mean"] == pytest.approx(sum(totals) / 16)
    assert batch.metrics["pool/subset_reward_mean"] == pytest.approx(4.0 / 8)


def test_a_step_samples_the_pool_with_an_int8_copy_and_trains_the_subset_with_is_weights(warm_policy, synth_task,
                                                                                       tmp_path, monkeypatch):
    import veripo.rollout.phase as phase

    from veripo.algos import truncated_is_weights
    from veripo.rollout.quantized import quantized_linear_count
    from veripo.sequences import build_sequences, completion_logps

    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run", "run.steps=1", "run.save_every=0",
                   *POOL)
    trainer = GRPOTrainer(cfg)
    engines = []
    real = trainer.rollout.pool.engine_for_step
    trainer.rollout.pool.engine_for_step = lambda engine, step: engines.append(real(engine, step)) or engines[-1]
    pools = []
    real_keep = phase.keep_pool_subset
    monkeypatch.setattr(phase, "keep_pool_subset",
                        lambda batch, pool: pools.append(batch.per_group(batch.scores["total"])) or real_keep(batch, pool))
    policy = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.step(0)
    assert quantized_linear_count(engines[0].model) > 0 and quantized_linear_count(trainer.model) == 0
    assert metrics["pool/candidates"] == 2 * 8
    rollouts = read_jsonl(tmp_path / "run" / "rollouts.jsonl")
    assert len(rollouts) == 2 * 4  # only the subset is stored and trained
    for g in range(2):  # each group's stored rewards: the best two and the worst two of its pool
        pool = sorted(pools[0][g])
        assert sorted(r["rewards"]["total"] for r in rollouts[4 * g: 4 * g + 4]) == pool[:2] + pool[-2:]
    assert metrics["pool/subset_reward_mean"] == pytest.approx(sum(r["rewards"]["total"] for r in rollouts) / 8)
    # the importance weight is min(pi_full / pi_int8, 3) on the stored tokens, pi_full the policy before the update
    prompts = trainer.engine.prompt_batch(trainer.rollout._step_prompts[0])
    pad = trainer.tokenizer.pad_token_id
    seqs = build_sequences(prompts, [i // 4 for i in range(8)], [r["token_ids"] for r in rollouts], pad)
    with torch.no_grad():
        current = [p.detach().clone() for p in trainer.model.parameters()]
        for p, old in zip(trainer.model.parameters(), policy):
            p.copy_(old)
        full, _ = completion_logps(trainer.model, seqs, cfg.rollout.temperature)
        for p, new in zip(trainer.model.parameters(), current):
            p.copy_(new)
    cheap = torch.zeros_like(full)
    for i, r in enumerate(rollouts):
        cheap[i, : len(r["logps"])] = torch.tensor(r["logps"])
    mask = seqs.completion_mask
    assert not torch.allclose(full * mask, cheap * mask, atol=1e-4)  # the stored log-probs are the int8 copy's
    w = truncated_is_weights(full, cheap, mask, cap=3.0)
    assert metrics["is_weight/mean"] == pytest.approx(float((w * mask).sum() / mask.sum()), abs=1e-4)
    assert metrics["ratio/mean"] == pytest.approx(1.0, abs=1e-4)  # PPO's ratio is against the full precision


def test_quantize_none_samples_the_pool_with_the_policy_and_needs_no_weights(warm_policy, synth_task, tmp_path):
    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run", "run.steps=1", "run.save_every=0",
                   *POOL, "rollout.cheap_pool.quantize=none", "algo.policy_loss=awm")
    metrics = GRPOTrainer(cfg).step(0)
    assert metrics["pool/candidates"] == 16 and "is_weight/mean" not in metrics


@pytest.mark.parametrize("bad,match", [
    (["rollout.cheap_pool.pool_size=3"], "pool_size"),
    (["rollout.cheap_pool.keep_top=1", "rollout.cheap_pool.keep_bottom=0"], "keep_top"),
    (["rollout.controller=xrpo"], "controller"),
    (["rollout.engine=vllm"], "quantize"),
    (["algo.policy_loss=awm"], "is_weights"),
    (["rollout.cheap_pool.is_cap=0"], "is_cap"),
])
def test_cheap_pool_config_rules_fail_before_any_model_is_loaded(bad, match):
    from veripo.config import load_config
    from veripo.grpo.config import GRPOConfig

    with pytest.raises(ConfigError, match=match):
        load_config(GRPOConfig, None, ["rollout.group_size=4", *POOL, *bad])


def test_an_int8_copy_with_nothing_quantised_is_refused(tiny_kit_dir):  # noqa: F811
    from veripo.models import load_policy
    from veripo.rollout.engine import EngineSpec
    from veripo.rollout.hf_engine import HFEngine
    from veripo.rollout.quantized import QuantizationError

    model, processor = load_policy(tiny_kit_dir)
    engine = HFEngine.build(EngineSpec(name="hf", model_path=str(tiny_kit_dir)), model, processor)
    pool = CheapPool(CheapPoolConfig(pool_size=4, keep_float=["model", "lm_head"]), group_size=2)
    with pytest.raises(QuantizationError, match="no quantised Linear"):
        pool.engine_for_step(engine, 0)
    int8 = CheapPool(CheapPoolConfig(pool_size=4), group_size=2)
    first = int8.engine_for_step(engine, 0)
    assert first.model is not model
    assert int8.engine_for_step(engine, 0) is first  # one copy per step, reused by the step's later calls
    assert int8.engine_for_step(engine, 1) is not first  # a new step copies the updated weights
