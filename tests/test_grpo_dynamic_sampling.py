"""DAPO dynamic sampling with refill (``algo.dynamic_sampling=true algo.max_num_gen_batches=K``): the rollout phase
samples more prompts until the step holds ``prompts_per_step`` groups whose rewards differ, so the update trains on
that many informative groups and on nothing else. On the tiny kit, with a reward that gives spread only to chosen
prompts."""
from __future__ import annotations

from collections import defaultdict

from veripo.config import load_config
from veripo.data.schema import load_samples
from veripo.grpo.config import GRPOConfig
from veripo.grpo.trainer import GRPOTrainer
from veripo.io_utils import read_jsonl
from veripo.rewards import register_reward

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO, synth_task, task_kit  # noqa: F401

SPREAD: set[str] = set()  # the prompts whose rollouts get rewards 0, 1, 0, 1, ...; the others all get 1


@register_reward("spread_for_some_prompts_test")
def spread_for_some_prompts(responses, samples):
    return [float(i % 2) if s.problem_id in SPREAD else 1.0 for i, s in enumerate(samples)]


spread_for_some_prompts.batched = True


def cfg_for(model, task, out, *extra):
    return load_config(GRPOConfig, None, [
        f"model.path={model}", f"data.train_file={task / 'train.jsonl'}", f"run.out_dir={out}",
        "rollout.prompts_per_step=4", "rollout.group_size=2", "rollout.max_new_tokens=8", "run.tensorboard=false",
        "run.steps=1", "run.save_every=0", "reward.weights={spread_for_some_prompts_test: 1.0}",
        "algo.dynamic_sampling=true", *VIDEO, *extra])


def stored_groups(out):
    groups = defaultdict(list)
    for r in read_jsonl(out / "rollouts.jsonl"):
        groups[r["sample"]["problem_id"]].append(r)
    return groups


def test_refill_trains_on_exactly_prompts_per_step_groups_with_spread(task_kit, synth_task, tmp_path):
    rows = load_samples(synth_task / "train.jsonl")
    SPREAD.clear()
    SPREAD.update(r.problem_id for r in rows[::3])  # a third of the rows: the first batch is short of them
    trainer = GRPOTrainer(cfg_for(task_kit, synth_task, tmp_path / "run", "algo.max_num_gen_batches=12"))
    first = [s.problem_id for s in trainer.sampler.batch(0)]
    assert 0 < len(SPREAD & set(first)) < 4, first
    trainer.train()
    groups = stored_groups(tmp_path / "run")
    assert len(groups) == 4 and set(groups) <= SPREAD  # what the update got is what the store holds
    assert all(len({r["rewards"]["total"] for r in g}) == 2 and all(r["kept"] for r in g) for g in groups.values())
    (metrics,) = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert metrics["frac_groups_nonzero_std"] == 1.0 and metrics["kept_frac"] == 1.0
    assert metrics["dynamic_sampling/gen_batches"] > 1 and metrics["dynamic_sampling/groups_short"] == 0


def test_the_cap_on_generation_rounds_trains_on_the_groups_found(task_kit, synth_task, tmp_path):
    trainer = GRPOTrainer(cfg_for(task_kit, synth_task, tmp_path / "run", "algo.max_num_gen_batches=2"))
    SPREAD.clear()
    SPREAD.add(trainer.sampler.batch(0)[1].problem_id)  # the only prompt in the whole data set with spread
    trainer.train()
    groups = stored_groups(tmp_path / "run")
    (metrics,) = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert set(groups) == SPREAD and len(groups[min(SPREAD)]) == 2
    assert metrics["dynamic_sampling/gen_batches"] == 2 and metrics["dynamic_sampling/groups_short"] == 3


def test_without_refill_the_zero_spread_groups_are_masked_as_before(task_kit, synth_task, tmp_path):
    rows = load_samples(synth_task / "train.jsonl")
    SPREAD.clear()
    SPREAD.update(r.problem_id for r in rows[::3])
    trainer = GRPOTrainer(cfg_for(task_kit, synth_task, tmp_path / "run"))
    first = {s.problem_id for s in trainer.sampler.batch(0)}
    trainer.train()
    groups = stored_groups(tmp_path / "run")
    assert set(groups) == first
    assert {pid for pid, g in groups.items() if all(r["kept"] for r in g)} == first & SPREAD
    assert "dynamic_sampling/gen_batches" not in read_jsonl(tmp_path / "run" / "metrics.jsonl")[0]
