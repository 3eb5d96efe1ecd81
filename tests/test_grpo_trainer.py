"""The GRPO stage end to end on the tiny model and real synthetic videos."""
from __future__ import annotations

import json

import pytest
import torch

from veripo.config import load_config
from veripo.grpo.config import GRPOConfig
from veripo.grpo.trainer import GRPOTrainer
from veripo.io_utils import read_jsonl

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO, all_red_rows, synth_task, task_kit, warm_policy  # noqa: F401


def grpo_cfg(model, train_file, out, *extra):
    return load_config(GRPOConfig, None, [
        f"model.path={model}", "model.freeze_vision=false", f"data.train_file={train_file}", f"run.out_dir={out}",
        "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=32", "rollout.temperature=1.0",
        "run.tensorboard=false", "optim.lr=1e-4", *VIDEO, *extra])


def test_grpo_writes_every_rollout_and_a_loadable_policy(warm_policy, synth_task, tmp_path):
    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run", "run.steps=2", "run.save_every=0")
    summary = GRPOTrainer(cfg).train()
    rollouts = read_jsonl(tmp_path / "run" / "rollouts.jsonl")
    assert len(rollouts) == 2 * 2 * 4
    assert len({r["rollout_id"] for r in rollouts}) == len(rollouts)
    assert {r["step"] for r in rollouts} == {0, 1}
    first = rollouts[0]
    assert set(first["rewards"]) == {"accuracy", "format", "total"}
    assert first["token_ids"] and len(first["logps"]) == len(first["token_ids"])
    assert first["sample"]["path"].endswith(".mp4")
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1]
    for key in ("reward/accuracy", "reward/format", "response_length", "time/generate_s", "time/update_s",
                "clip_frac", "entropy", "grad_norm", "tokens_per_s"):
        assert key in metrics[0], key
    from veripo.models import load_policy

    model, _ = load_policy(summary["final_policy"])
    assert sum(p.numel() for p in model.parameters()) > 0


def test_reward_rises_on_a_learnable_task(warm_policy, tmp_path):
    """All answers are 'A': the policy learns that prior from the accuracy reward within a few dozen steps."""
    rows = all_red_rows(tmp_path / "red.jsonl")
    torch.manual_seed(0)
    cfg = grpo_cfg(warm_policy, rows, tmp_path / "run", "run.steps=24", "run.save_every=0", "optim.lr=3e-4",
                   "rollout.prompts_per_step=4", "rollout.group_size=8", "optim.micro_batch_size=32",
                   "rollout.max_new_tokens=40")
    GRPOTrainer(cfg).train()
    acc = [m["reward/accuracy"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    first, last = sum(acc[:5]) / 5, sum(acc[-5:]) / 5
    assert last > first + 0.2, acc


@pytest.mark.parametrize("topology", ["flat", "tree"])
def test_resume_after_a_crash_neither_repeats_nor_loses_rollouts(topology, warm_policy, synth_task, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "run"
    tree = ["rollout.tree_branches=[2,2]", "rollout.tree_segment_tokens=6", "algo.advantage_estimator=branch"]
    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", out, "run.steps=4", "run.save_every=2",
                   *(tree if topology == "tree" else []))
    trainer = GRPOTrainer(cfg)
    real_update, calls = trainer._update, []

    def crash_on_fourth(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")  # dies after step 3's rollouts were stored, before its update
        return real_update(*a, **k)

    monkeypatch.setattr(trainer, "_update", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    before = read_jsonl(out / "rollouts.jsonl")
    killed_metrics = read_jsonl(out / "metrics.jsonl")  # steps 0-2 logged by the killed run
    assert {r["step"] for r in before} == {0, 1, 2, 3}
    assert (out / "checkpoints" / "step-000002").exists()

    GRPOTrainer(cfg).train(resume=True)
    after = read_jsonl(out / "rollouts.jsonl")
    ids = [r["rollout_id"] for r in after]
    assert ids == [r["rollout_id"] for r in before] and len(ids) == len(set(ids)), "a rollout was repeated or lost"
    assert len(ids) == 4 * 2 * 4 or topology == "tree"  # a tree whose segment stops early has fewer leaves
    # steps 2 and 3 were not regenerated: the stored rollouts were replayed
    assert [r["response"] for r in after if r["step"] >= 2] == [r["response"] for r in before if r["step"] >= 2]
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1, 2, 3]  # each step logged once (the resume trims the log)
    if topology == "tree":  # the replayed step 2 rebuilt its trees from the store: the same segments are trained
        step2 = [m for m in killed_metrics if m["step"] == 2] + [m for m in metrics if m["step"] == 2]
        assert len(step2) == 2 and step2[0]["tree/decoded_tokens"] == step2[1]["tree/decoded_tokens"]
        assert step2[0]["adv/num_nodes"] == step2[1]["adv/num_nodes"]
    assert json.loads((out / "final" / "done.json").read_text())["steps"] == 4


@pytest.mark.parametrize("estimator,agg,loss,decoupled", [
    ("grpo", "grpo", "ppo_clip", False), ("dr_grpo", "dr_grpo", "ppo_clip", False),
    ("rloo", "bnpo", "ppo_clip", False), ("mc_grpo", "dapo", "ppo_clip", False),
    ("gdpo", "dapo", "ppo_clip", True), ("gd2po", "dapo", "ppo_clip", True), ("xrpo", "dapo", "ppo_clip", False),
    ("grpo", "dapo", "drpo", False), ("grpo", "grpo", "awm", False),
])
def test_each_estimator_aggregation_and_loss_is_selectable(estimator, agg, loss, decoupled, warm_policy,
                                                           synth_task, tmp_path):
    from veripo.algos import get_advantage_estimator

    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run", "run.steps=1", "run.save_every=0",
                   f"algo.advantage_estimator={estimator}", f"algo.loss_agg_mode={agg}", f"algo.policy_loss={loss}",
                   f"algo.decoupled_rewards={str(decoupled).lower()}", "algo.dynamic_sampling=true")
    trainer = GRPOTrainer(cfg)
    before = [p.detach().clone() for p in trainer.model.parameters() if p.requires_grad]
    metrics = trainer.step(0)
    assert all(v == v for v in metrics.values() if isinstance(v, float)), metrics  # no NaN
    rollouts = read_jsonl(tmp_path / "run" / "rollouts.jsonl")
    # the stored advantages are exactly what the configured estimator gives for the stored rewards
    keys = ["accuracy", "format"] if decoupled else ["total"]
    rewards = torch.tensor([[r["rewards"][k] for k in keys] for r in rollouts])
    rewards = rewards if decoupled else rewards[:, 0]
    kw = {"reward_weights": [1.0, 0.5]} if decoupled else {}
    if estimator == "xrpo":
        kw["seq_logps"] = torch.tensor([sum(r["logps"]) / len(r["logps"]) for r in rollouts])
        kw["correct"] = torch.tensor([r["rewards"]["accuracy"] >= 1 for r in rollouts])
    expected = get_advantage_estimator(estimator)(rewards, torch.arange(2).repeat_interleave(4), **kw)
    for r, adv, keep in zip(rollouts, expected.advantages, expected.keep_mask):
        if r["kept"]:
            assert r["advantage"] == pytest.approx(float(adv.mean()), abs=1e-5)
    changed = any(not torch.equal(b, p) for b, p in zip(before, (p for p in trainer.model.parameters() if p.requires_grad)))
    assert changed == bool(any(r["kept"] and abs(r["advantage"]) > 0 for r in rollouts)) or loss == "drpo"


def test_step_advantages_applies_gdro_weights_dynamic_sampling_and_the_tree_layout():
    from veripo.algos import get_advantage_estimator
    from veripo.grpo.advantage_step import row_advantages, step_advantages
    from veripo.grpo.config import AlgoConfig
    from veripo.rewards import RewardSpec
    from veripo.generation.types import Completion

    groups = [[Completion("a", [1, 2], [-0.1, -0.1], "stop"), Completion("b", [3], [-0.2], "stop")],
              [Completion("c", [4], [-0.1], "stop"), Completion("d", [5], [-0.1], "stop")]]
    scores = {"accuracy": [1.0, 0.0, 1.0, 1.0], "format": [1.0, 1.0, 1.0, 1.0], "total": [1.5, 0.5, 1.5, 1.5]}
    grpo = get_advantage_estimator("grpo")
    plain = grpo(torch.tensor(scores["total"]), torch.tensor([0, 0, 1, 1])).advantages
    out = step_advantages(grpo, AlgoConfig(dynamic_sampling=True), RewardSpec(), scores, groups, [2.0, 1.0])
    assert torch.allclose(out.advantages, plain * torch.tensor([2.0, 2.0, 1.0, 1.0]))  # GDRO Eq 16 multipliers
    assert out.keep.tolist() == [True, True, False, False]  # group 1 all agree: no signal, masked
    assert out.train_mask is None
    tree = step_advantages(get_advantage_estimator("branch"), AlgoConfig(), RewardSpec(), scores, groups)
    assert tree.advantages.shape == (4, 2) and tree.train_mask.tolist() == [[1, 1], [1, 0], [1, 0], [1, 0]]
    # flat groups under branch: GRPO with the unbiased std, per token; stored as the mean over trained tokens
    assert torch.allclose(row_advantages(tree.advantages, tree.train_mask), plain, atol=1e-3)  # eps 1e-8 vs 1e-4


def test_time_limit_stops_after_the_step_that_crosses_it_and_counts_across_a_resume(warm_policy, synth_task,
                                                                                     tmp_path, monkeypatch):
    """run.time_limit_s ends the run after the step during which the budget ran out (final policy saved, the
    summary says how many steps ran); a resume counts the seconds spent before the kill."""
    import veripo.train.run_config as run_config

    clock = {"now": 0.0}
    monkeypatch.setattr(run_config.RunConfig, "clock", lambda self: clock["now"])
    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run", "run.steps=10", "run.save_every=2",
                   "run.time_limit_s=25")
    trainer = GRPOTrainer(cfg)
    real = trainer.step

    def ten_seconds_each(step, *a, **k):
        clock["now"] += 10.0
        if step == 2:
            raise KeyboardInterrupt("killed")  # after 20 s: the checkpoint at step 2 holds 20 s spent
        return real(step, *a, **k)

    monkeypatch.setattr(trainer, "step", ten_seconds_each)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    clock["now"] = 1000.0  # the new process's clock starts anywhere
    resumed = GRPOTrainer(cfg)
    real_resumed = resumed.step
    monkeypatch.setattr(resumed, "step", lambda step, *a, **k: clock.update(now=clock["now"] + 10.0) or
                        real_resumed(step, *a, **k))
    summary = resumed.train(resume=True)
    assert summary["steps"] == 3  # 20 s before the kill + 10 s for step 2 crosses 25 s
    assert [m["step"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [0, 1, 2]
    assert json.loads((tmp_path / "run" / "final" / "done.json").read_text())["steps"] == 3
