"""GRPO and the SFT warm start on the distributed layer: DDP with one process trains exactly like no backend, and
two torchrun processes on CPU (gloo) share the step's prompts, write each rollout once and log once per step."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from veripo.grpo.trainer import GRPOTrainer, check_world
from veripo.io_utils import read_jsonl
from veripo.models import load_policy

from kit_fixtures import tiny_kit_dir  # noqa: F401
from test_grpo_trainer import grpo_cfg
from train_fixtures import VIDEO, all_red_rows, synth_task, task_kit, warm_policy  # noqa: F401

TORCHRUN = Path(sys.executable).parent / "torchrun"


def _weights(path):
    model, _ = load_policy(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _torchrun(args: list[str], out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "veripo.cli", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (out / "final" / "done.json").exists()


def test_ddp_with_one_process_matches_plain_grpo(warm_policy, synth_task, tmp_path, monkeypatch):
    from veripo.train.distributed import free_port

    # 16 rollouts a step in pieces of 5, 5, 5, 1; long enough answers that groups disagree (a learning signal)
    rows = all_red_rows(tmp_path / "red.jsonl")
    common = ["run.steps=2", "run.save_every=0", "optim.micro_batch_size=5", "rollout.group_size=8",
              "rollout.max_new_tokens=40"]
    GRPOTrainer(grpo_cfg(warm_policy, rows, tmp_path / "plain", *common)).train()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    GRPOTrainer(grpo_cfg(warm_policy, rows, tmp_path / "ddp", *common, "dist.backend=ddp")).train()
    plain, ddp = read_jsonl(tmp_path / "plain" / "rollouts.jsonl"), read_jsonl(tmp_path / "ddp" / "rollouts.jsonl")
    assert [r["rollout_id"] for r in plain] == [r["rollout_id"] for r in ddp]
    assert [r["response"] for r in plain] == [r["response"] for r in ddp]
    a, b = _weights(tmp_path / "plain" / "final"), _weights(tmp_path / "ddp" / "final")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    metrics = read_jsonl(tmp_path / "plain" / "metrics.jsonl")
    assert any(m.get("grad_norm", 0.0) > 0 for m in metrics), f"no learning signal, nothing compared: {metrics}"
    start = _weights(warm_policy)
    assert any(not torch.equal(start[k], a[k]) for k in a)


def test_world_size_checks_name_the_setting(warm_policy, synth_task, tmp_path):
    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run", "rollout.prompts_per_step=3")
    check_world(cfg, 1)
    with pytest.raises(ValueError, match="prompts_per_step=3 is not a multiple of the 2 processes"):
        check_world(cfg, 2)
    check_world(grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run", "rollout.controller=gdro",
                         "rollout.prune=arrol"), 2)  # controllers and pruning run on several processes


def test_torchrun_two_processes_grpo(warm_policy, synth_task, tmp_path):
    out = tmp_path / "run"
    _torchrun(["grpo", f"model.path={warm_policy}", "model.freeze_vision=false",
               f"data.train_file={synth_task / 'train.jsonl'}", f"run.out_dir={out}", "run.steps=2",
               "run.save_every=0", "rollout.prompts_per_step=2", "rollout.group_size=4",
               "rollout.max_new_tokens=16", "run.tensorboard=false", "optim.lr=1e-4", "dist.backend=ddp", *VIDEO], out)
    rollouts = read_jsonl(out / "rollouts.jsonl")
    ids = [r["rollout_id"] for r in rollouts]
    assert len(ids) == len(set(ids)) == 2 * 2 * 4  # both ranks' rollouts, each exactly once
    assert {r["step"] for r in rollouts} == {0, 1}
    for step in (0, 1):  # each step's two prompts: one sampled by each rank
        assert len({r["group_id"] for r in rollouts if r["step"] == step}) == 2
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1]  # rank 0 alone writes, once per step
    assert all(torch.isfinite(torch.tensor(m["reward/total"])) for m in metrics)


def test_torchrun_two_processes_share_the_controller_and_pruner_state(warm_policy, synth_task, tmp_path):
    """GDRO + ARRoL (mid-generation) on two processes: every rank observes both ranks' outcomes, so the state rank 0
    checkpoints after step 0 holds both prompts and all 8 survivors, not only its own half."""
    from veripo.train.checkpoint import checkpoint_dir, load_trainer_state

    out = tmp_path / "run"
    _torchrun(["grpo", f"model.path={warm_policy}", "model.freeze_vision=false",
               f"data.train_file={synth_task / 'train.jsonl'}", f"run.out_dir={out}", "run.steps=2",
               "run.save_every=1", "rollout.prompts_per_step=2", "rollout.group_size=4",
               "rollout.max_new_tokens=12", "run.tensorboard=false", "optim.lr=1e-4", "dist.backend=ddp",
               "rollout.controller=gdro", "rollout.prune=arrol", "rollout.prune_kwargs={prefix_tokens: 4}", *VIDEO], out)
    rollouts = read_jsonl(out / "rollouts.jsonl")
    assert len({r["rollout_id"] for r in rollouts}) == len(rollouts) == 2 * 2 * 4  # budget-neutral on each rank
    step0 = {r["sample"]["problem_id"] for r in rollouts if r["step"] == 0}
    assert len(step0) == 2
    state = load_trainer_state(checkpoint_dir(out, 1))["trainer"]
    assert set(state["controller"]["tracker"]["history"]) == step0
    assert len(state["pruner"]["pruner"]["labels"]) == 8
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1] and all(m["prune/pruned_rollouts"] == 4 for m in metrics)


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed (optional)")
def test_torchrun_zero3_grpo_samples_and_trains_like_ddp(warm_policy, synth_task, tmp_path):
    """ZeRO-3 with every parameter partitioned (persistence threshold 0): the ranks' trees end at different depths
    and lengths, so generation only works because the model is gathered once per rollout phase
    (TrainEngine.for_generation); rollouts and log-probs then equal DDP's."""
    common = [f"model.path={warm_policy}", "model.freeze_vision=false", f"data.train_file={synth_task / 'train.jsonl'}",
              "run.steps=2", "run.save_every=0", "rollout.prompts_per_step=2", "rollout.group_size=4",
              "rollout.max_new_tokens=48", "run.tensorboard=false", "optim.lr=1e-4", "rollout.tree_branches=[2,2]",
              "rollout.tree_segment_tokens=6", "algo.advantage_estimator=branch", *VIDEO]
    _torchrun(["grpo", *common, f"run.out_dir={tmp_path / 'ddp'}", "dist.backend=ddp"], tmp_path / "ddp")
    zero3 = os.path.join(os.path.dirname(__file__), "..", "scripts", "deepspeed", "zero3.json")
    _torchrun(["grpo", *common, f"run.out_dir={tmp_path / 'z3'}", "dist.backend=deepspeed",
               f"dist.deepspeed_config={zero3}",
               "dist.deepspeed_overrides={zero_optimization: {stage3_param_persistence_threshold: 0}}"], tmp_path / "z3")
    ddp, z3 = read_jsonl(tmp_path / "ddp" / "rollouts.jsonl"), read_jsonl(tmp_path / "z3" / "rollouts.jsonl")
    assert [r["response"] for r in ddp] == [r["response"] for r in z3] and len({r["step"] for r in z3}) == 2
    assert len({len(r["token_ids"]) for r in z3}) > 1  # the ranks' rollouts really differed in length
    for a, b in zip(ddp, z3):
        assert torch.allclose(torch.tensor(a["logps"]), torch.tensor(b["logps"]), atol=1e-4)


def test_torchrun_two_processes_sft(task_kit, synth_task, tmp_path):
    out = tmp_path / "sft"
    _torchrun(["sft", f"model.path={task_kit}", "model.freeze_vision=false",
               f"train_file={synth_task / 'train.jsonl'}", f"out_dir={out}", "steps=3", "batch_size=4",
               "optim.lr=1e-3", "dist.backend=ddp", *VIDEO], out)
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1, 2]
    assert all(torch.isfinite(torch.tensor(m["loss"])) and m["loss"] > 0 for m in metrics)
    before, after = _weights(task_kit), _weights(out / "final")
    assert any(not torch.equal(before[k], after[k]) for k in after if k in before)
