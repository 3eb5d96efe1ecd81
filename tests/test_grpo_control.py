"""The Control step wired into GRPO: GDRO prompt selection and rollout allocation, XRPO two-phase allocation,
ARRoL pruning (mid-generation and post hoc); budget neutrality, rollouts.jsonl group sizes, controller state through checkpoint + resume."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from veripo.config import ConfigError, load_config
from veripo.data.schema import Sample
from veripo.grpo.config import GRPOConfig
from veripo.grpo.trainer import GRPOTrainer, micro_batches
from veripo.rollout.engine import EngineCapabilities
from veripo.io_utils import read_jsonl
from veripo.rollout.control import GDROController, XRPOController, build_controller
from veripo.rollout.prune import PrefixPruner
from veripo.generation.types import Completion
from veripo.train.checkpoint import latest_checkpoint, load_trainer_state

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO, synth_task, task_kit, warm_policy  # noqa: F401

ROWS = [Sample(problem_id=f"q{i}", problem="q?", problem_type="numerical", solution="1") for i in range(32)]


def prime(controller, hard, easy, k=4, times=2):
    """Let the controller see ``hard`` prompts fail every rollout and ``easy`` ones pass every rollout."""
    for _ in range(times):
        controller.observe(hard + easy, [[0.0] * k] * len(hard) + [[1.5] * k] * len(easy),
                           [[False] * k] * len(hard) + [[True] * k] * len(easy))


def gdro(rows=ROWS, **kw):
    return GDROController(rows, group_size=4, min_group_size=2, max_group_size=8, seed=3,
                          **{"rollout_ema": 1.0, "eta": 20.0, **kw})


# ------------------------------------------------------------------------------------------ pure glue

def test_gdro_draws_persistently_failed_prompts_far_more_often():
    c = gdro()
    hard, easy, unseen = ROWS[:8], ROWS[8:16], ROWS[16:]
    uniform = [p.problem_id for s in range(100) for p in c.select_prompts(s, ROWS[:4])]
    prime(c, hard, easy)
    probs = dict(zip([r.problem_id for r in ROWS], c.selection_probs()))
    assert min(probs[r.problem_id] for r in hard) > 2 * max(probs[r.problem_id] for r in unseen + easy)
    assert sum(probs.values()) == pytest.approx(1.0)
    drawn = [p.problem_id for s in range(100) for p in c.select_prompts(s, ROWS[:4])]
    hard_ids = {r.problem_id for r in hard}
    share = sum(p in hard_ids for p in drawn) / len(drawn)
    assert share > 0.5 > 0.3 > sum(p in hard_ids for p in uniform) / len(uniform)  # 8 of 32 rows
    for s in range(20):  # no prompt twice in one step (group ids are per prompt per step)
        assert len({p.problem_id for p in c.select_prompts(s, ROWS[:4])}) == 4
    twin = gdro()
    twin.load_state_dict(c.state_dict())
    assert [twin.select_prompts(s, ROWS[:4]) for s in range(5)] == [c.select_prompts(s, ROWS[:4]) for s in range(5)]


def test_gdro_allocation_is_budget_neutral_and_goes_where_outcomes_vary():
    c = gdro()
    prime(c, ROWS[:8], ROWS[8:16])
    prompts = ROWS[:2] + ROWS[8:9] + ROWS[20:21]  # hard, hard, easy, unseen (variance 0.25)
    sizes = c.allocate(0, prompts)
    assert sum(sizes) == 4 * 4 and all(2 <= n <= 8 for n in sizes)
    assert sizes[3] == 8 and sizes[3] > max(sizes[:3])
    with pytest.raises(ValueError, match="min_group_size"):
        GDROController(ROWS, group_size=4, min_group_size=5, max_group_size=8)
    assert build_controller("none", ROWS, 1, 2, 3).allocate(0, ROWS[:2]) == [1, 1]  # default path: no bounds
    with pytest.raises(ValueError, match="unknown option"):
        build_controller("gdro", ROWS, 4, 2, 8, kwargs={"etta": 1.0})


def test_xrpo_spends_the_rest_where_the_confidence_interval_shrinks_most_within_the_cap():
    c = XRPOController(ROWS, group_size=4, min_group_size=2, max_group_size=5)
    assert c.allocate(0, ROWS[:3]) == [2, 2, 2]
    extra = c.refine(0, ROWS[:3], [[1.0, 1.0], [0.0, 1.5], [0.0, 0.0]], extra=6)
    assert sum(extra) == 6
    assert extra[1] == 3  # capped at 5 in all; the overflow goes to the next priorities
    assert 2 + extra[1] <= 5
    uncapped = XRPOController(ROWS, group_size=4, min_group_size=2, max_group_size=12)
    assert uncapped.refine(0, ROWS[:3], [[1.0, 1.0], [0.0, 1.5], [0.0, 0.0]], extra=6) == [0, 6, 0]
    with pytest.raises(ValueError, match="min_group_size >= 2"):
        XRPOController(ROWS, group_size=4, min_group_size=1, max_group_size=8)


def test_prefix_pruner_keeps_the_balanced_subset_of_the_spec_example():
    p_hat = [0.9, 0.85, 0.8, 0.2, 0.1, 0.05]  # spec A8's worked example: keep {0.9, 0.85, 0.2, 0.05}
    pool = [Completion(f"r{i}", [i, 7, 7], [math.log(p), -5.0, -5.0], "stop") for i, p in enumerate(p_hat)]
    pruner = PrefixPruner(seed=0, prefix_tokens=1, trust_head="always", pool_factor=1.5)
    assert pruner.pool_size(4) == 6
    kept, pruned = pruner.prune(0, [pool], [4])
    assert [c.text for c in kept[0]] == ["r0", "r1", "r3", "r5"] and [c.text for c in pruned[0]] == ["r2", "r4"]
    random_pruner = PrefixPruner(seed=0, prefix_tokens=1, trust_head="never")
    again = PrefixPruner(seed=0, prefix_tokens=1, trust_head="never")
    first = random_pruner.prune(5, [pool, pool], [4, 3])[0]
    assert [len(k) for k in first] == [4, 3]
    assert first == again.prune(5, [pool, pool], [4, 3])[0]  # random pruning is a function of (seed, step)
    with pytest.raises(ValueError, match="prune_kwargs"):
        PrefixPruner(pool_factor=0.5)


def test_micro_batches_keep_variable_groups_whole_when_asked():
    ids = [0] * 2 + [1] * 6 + [2] * 3 + [3] * 9
    assert micro_batches(ids, 8, whole_groups=True) == [(0, 8), (8, 11), (11, 20)]
    assert micro_batches(ids, 8) == [(0, 8), (8, 16), (16, 20)]


def test_config_fields_are_checked():
    cfg = load_config(GRPOConfig, None, ["rollout.controller=gdro", "rollout.controller_kwargs.eta=2.0",
                                         "rollout.group_size=6"])
    assert cfg.rollout.controller_kwargs == {"eta": 2.0} and cfg.rollout.max_group == 18
    with pytest.raises(ConfigError, match="rollout.controller"):
        load_config(GRPOConfig, None, ["rollout.controller=bandit"])


# ------------------------------------------------------------------------------------------ end to end

def grpo_cfg(model, task, out, *extra):
    return load_config(GRPOConfig, None, [
        f"model.path={model}", "model.freeze_vision=false", f"data.train_file={task / 'train.jsonl'}",
        f"run.out_dir={out}", "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=12",
        "rollout.temperature=1.0", "run.tensorboard=false", "optim.lr=1e-4", "rollout.min_group_size=2",
        "rollout.max_group_size=8", *VIDEO, *extra])


def groups_of(rollouts):
    sizes: dict[int, Counter] = {}
    for r in rollouts:
        sizes.setdefault(r["step"], Counter())[r["group_id"]] += 1
    return sizes


def test_gdro_run_selects_allocates_and_resumes_with_its_state(warm_policy, synth_task, tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = grpo_cfg(warm_policy, synth_task, out, "run.steps=3", "run.save_every=2", "rollout.controller=gdro",
                   "rollout.controller_kwargs={eta: 20.0, rollout_ema: 1.0}")
    trainer = GRPOTrainer(cfg)
    hard, easy = trainer.rows[:8], trainer.rows[8:16]
    prime(trainer.controller, hard, easy)
    real_update, calls = trainer._update, []

    def crash_on_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")  # after step 2's rollouts were stored and observed
        return real_update(*a, **k)

    monkeypatch.setattr(trainer, "_update", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    before = read_jsonl(out / "rollouts.jsonl")
    sizes = groups_of(before)
    assert sorted(sizes) == [0, 1, 2]
    for step, groups in sizes.items():
        assert sum(groups.values()) == 16 and all(2 <= n <= 8 for n in groups.values()), (step, groups)
        assert all(gid.startswith(f"{step:06d}-") for gid in groups)
    assert any(len(set(g.values())) > 1 for g in sizes.values()), sizes  # the allocation is not uniform
    hard_ids = {r.problem_id for r in hard}
    picked = [r["sample"]["problem_id"] for r in before if r["rollout_id"].endswith("-00")]
    assert sum(p in hard_ids for p in picked) / len(picked) > 0.5, picked  # 8 of 32 rows: 0.25 if uniform
    assert [p.problem_id for p in trainer.sampler.batch(0)] != picked[:4]

    state = load_trainer_state(latest_checkpoint(out))["trainer"]["controller"]
    assert state["name"] == "gdro" and any(state["prompt"]["scores"])
    resumed = GRPOTrainer(cfg)
    resumed.train(resume=True)
    after = read_jsonl(out / "rollouts.jsonl")
    assert [r["rollout_id"] for r in after] == [r["rollout_id"] for r in before]  # replayed, nothing regenerated
    assert groups_of(after) == sizes
    # the checkpoint's state (after step 1) + the replayed step 2 observed again == the killed run's state
    assert resumed.controller.state_dict() == trainer.controller.state_dict()
    metrics = read_jsonl(out / "metrics.jsonl")
    assert all(m["rollouts/total"] == 16 for m in metrics) and "gdro/q_bin0" in metrics[0]


def response_chars(response: str, sample) -> float:
    """A reward that (almost) always differs between two sampled responses: the response's length in chars."""
    return len(response) / 100


def test_xrpo_run_gives_the_extra_rollouts_where_the_allocator_says(warm_policy, synth_task, tmp_path, monkeypatch):
    cfg = grpo_cfg(warm_policy, synth_task, tmp_path / "run", "run.steps=2", "run.save_every=0",
                   "rollout.controller=xrpo", "rollout.prompts_per_step=3",
                   "reward.weights={accuracy: 1.0, format: 0.5, 'test_grpo_control:response_chars': 1.0}")
    trainer, synced = GRPOTrainer(cfg), []
    # an engine that receives weights (colocated vLLM) gets the policy after every update
    monkeypatch.setattr(trainer.engine, "capabilities", EngineCapabilities(continues_partial=True,
                                                                           receives_weights=True))
    monkeypatch.setattr(trainer.engine, "sync_weights", lambda model: synced.append(model))
    trainer.train()
    assert len(synced) == 2 and all(m is trainer.model for m in synced)
    rollouts = read_jsonl(tmp_path / "run" / "rollouts.jsonl")
    for step, groups in groups_of(rollouts).items():
        assert sum(groups.values()) == 12 and all(2 <= n <= 8 for n in groups.values())
        # phase 1 = each group's rollouts 00 and 01; the stored sizes are XRPO's plan for those rewards
        first = [[r["rewards"]["total"] for r in rollouts
                  if r["group_id"] == g and r["rollout_id"][-2:] in ("00", "01")] for g in groups]
        plan = XRPOController(ROWS, 4, 2, 8).refine(step, ROWS[:3], first, extra=6)
        assert [groups[g] - 2 for g in groups] == plan, (groups, first)
    assert any(len(set(g.values())) > 1 for g in groups_of(rollouts).values())  # not a uniform allocation
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert all(m["rollouts/total"] == 12 and m["rollouts/group_size_max"] > 4 for m in metrics)


@pytest.mark.parametrize("mode", ["midgen", "posthoc"])
def test_arrol_pruning_keeps_the_budget_and_reports_what_it_pruned(mode, warm_policy, synth_task, tmp_path):
    out = tmp_path / "run"
    cfg = grpo_cfg(warm_policy, synth_task, out, "run.steps=2", "run.save_every=1", "rollout.prompts_per_step=2",
                   "rollout.prune=arrol", f"rollout.prune_kwargs={{pool_factor: 2.0, prefix_tokens: 4, mode: {mode}}}")
    trainer = GRPOTrainer(cfg)
    trainer.train()
    rollouts = read_jsonl(out / "rollouts.jsonl")
    assert all(sum(g.values()) == 8 and set(g.values()) == {4} for g in groups_of(rollouts).values())
    for r in rollouts:
        head = r["logps"][:4]
        assert r["p_hat"] == pytest.approx(math.exp(sum(head) / len(head)))
        assert len(r["token_ids"]) == len(r["logps"]) > 0
    # the survivors were finished: stopped, or at the full budget (never cut at the 4-token pruning point)
    assert all(r["finish_reason"] == "stop" or len(r["token_ids"]) == 12 for r in rollouts)
    assert any(len(r["token_ids"]) > 4 for r in rollouts)
    metrics = read_jsonl(out / "metrics.jsonl")
    for m in metrics:
        assert m["prune/pool_rollouts"] == 16 and m["prune/pruned_rollouts"] == 8 and m["rollouts/total"] == 8
        assert "prune/head_trusted" in m
        if mode == "midgen":  # the pruned were stopped after their 4-token heads
            assert m["prune/pruned_tokens"] <= 8 * 4 and "prune/pruned_reward" not in m
        else:
            assert "prune/pruned_reward" in m
    ckpt = load_trainer_state(latest_checkpoint(out))["trainer"]["pruner"]["pruner"]
    assert len(ckpt["labels"]) == 8  # step 0's survivors calibrated the head before the step-1 checkpoint
    assert trainer.pruner.pruner.state_dict()["labels"][:8] == ckpt["labels"]
    assert torch.is_tensor(ckpt["rng"])


def test_arrol_learned_head_fits_on_survivors_hidden_states_and_is_checkpointed(warm_policy, synth_task, tmp_path):
    out = tmp_path / "run"
    cfg = grpo_cfg(warm_policy, synth_task, out, "run.steps=3", "run.save_every=2", "rollout.prompts_per_step=2",
                   "rollout.max_new_tokens=32", "rollout.prune=arrol",
                   "rollout.prune_kwargs={pool_factor: 2.0, prefix_tokens: 6, head: learned, trust_head: always}")
    trainer = GRPOTrainer(cfg)
    trainer.train()
    metrics = read_jsonl(out / "metrics.jsonl")
    assert all("prune/head_fitted" in m for m in metrics)
    state = load_trainer_state(latest_checkpoint(out))["trainer"]["pruner"]["quality_head"]
    hidden = trainer.model.config.get_text_config().hidden_size
    assert state["features"].shape == (2 * 8, hidden)  # steps 0 and 1: 8 survivors each, with their states
    head = trainer.pruner.quality_head
    assert head.features.shape == (3 * 8, hidden) and head.fitted == bool(head.labels.min() != head.labels.max())
    rollouts = read_jsonl(out / "rollouts.jsonl")
    assert all(0.0 <= r["p_hat"] <= 1.0 for r in rollouts)
    with pytest.raises(ValueError, match="needs mode=midgen"):
        GRPOTrainer(grpo_cfg(warm_policy, synth_task, tmp_path / "x", "rollout.prune=arrol",
                             "rollout.prune_kwargs={head: learned, mode: posthoc}"))


def test_arrol_learned_head_is_refitted_on_the_steps_a_resumed_run_replays(warm_policy, synth_task, tmp_path,
                                                                             monkeypatch):
    out = tmp_path / "run"
    cfg = grpo_cfg(warm_policy, synth_task, out, "run.steps=3", "run.save_every=2", "rollout.prompts_per_step=2",
                   "rollout.max_new_tokens=32", "rollout.prune=arrol",
                   "rollout.prune_kwargs={pool_factor: 2.0, prefix_tokens: 6, head: learned}")
    trainer = GRPOTrainer(cfg)
    real_update, calls = trainer._update, []

    def crash_on_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")  # after step 2's rollouts, hidden states and outcomes were taken
        return real_update(*a, **k)

    monkeypatch.setattr(trainer, "_update", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert sorted(p.name for p in (out / "prune_features").iterdir()) == [f"step-00000{i}.pt" for i in range(3)]
    killed = trainer.pruner.quality_head
    resumed = GRPOTrainer(cfg)
    resumed.train(resume=True)  # restores the step-2 checkpoint, then replays step 2 with its stored states
    head = resumed.pruner.quality_head
    assert torch.equal(head.features, killed.features) and torch.equal(head.labels, killed.labels)
    assert (head.weight is None and killed.weight is None) or torch.equal(head.weight, killed.weight)
