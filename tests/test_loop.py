"""`veripo loop`: two full iterations on CPU, kill-and-resume, and the shell pipeline giving the same files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from veripo.config import from_dict
from veripo.io_utils import read_jsonl
from veripo.loop.config import LoopConfig
from veripo.loop.runner import run_loop

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO_DICT, synth_task, task_kit, warm_policy  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def loop_dict(warm_policy, task, run_dir, iterations=2):
    return {
        "model_path": str(warm_policy), "train_file": str(task / "train.jsonl"), "test_file": str(task / "test.jsonl"),
        "run_dir": str(run_dir), "iterations": iterations, "video": VIDEO_DICT, "model": {"freeze_vision": False},
        "grpo": {"rollout": {"prompts_per_step": 2, "group_size": 4, "max_new_tokens": 32, "temperature": 1.0},
                 "optim": {"lr": 1e-4}, "run": {"steps": 2, "save_every": 1, "tensorboard": False}},
        "dpo": {"batch_size": 4, "optim": {"lr": 1e-4}, "heldout_fraction": 0.0, "save_every": 1, "tensorboard": False},
        "iteration_overrides": {"2": {"grpo": {"rollout": {"temperature": 0.7}}}},
        "eval": {"limit": 4, "max_new_tokens": 32},
    }


def outputs(run_dir: Path) -> set[str]:
    skip = ("checkpoints", "tensorboard", "manifest.json", "loop_config.yaml")
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
            if p.is_file() and not any(s in p.parts or p.name == s for s in skip)}


@pytest.fixture(scope="module")
def uninterrupted(warm_policy, synth_task, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("loop") / "a"
    manifest = run_loop(from_dict(LoopConfig, loop_dict(warm_policy, synth_task, run_dir)), log=lambda m: None)
    return run_dir, manifest


def test_two_iterations_run_end_to_end(uninterrupted):
    run_dir, manifest = uninterrupted
    stages = manifest["stages"]
    for it in (1, 2):
        for stage in ("grpo", "eval-grpo", "verify", "dpo", "eval-dpo"):
            assert stages[f"iter-{it}/{stage}"]["status"] == "done"
    assert stages["eval-start"]["summary"]["accuracy"] is not None
    # iteration 2 starts from iteration 1's DPO policy, and its rollouts exist
    assert len(read_jsonl(run_dir / "iter-2" / "grpo" / "rollouts.jsonl")) == 2 * 2 * 4
    cfg = yaml.safe_load((run_dir / "iter-2" / "grpo" / "config.yaml").read_text())
    assert cfg["model"]["path"] == str(run_dir / "iter-1" / "dpo" / "final")
    assert cfg["rollout"]["temperature"] == 0.7  # the per-iteration override
    table = (run_dir / "summary.md").read_text()
    assert "iter-2/dpo" in table and "held-out accuracy" in table


def test_kill_mid_stage_then_resume_gives_the_same_outputs(uninterrupted, warm_policy, synth_task, tmp_path,
                                                           monkeypatch):
    from veripo.grpo.trainer import GRPOTrainer

    run_a, _ = uninterrupted
    run_b = tmp_path / "b"
    cfg = from_dict(LoopConfig, loop_dict(warm_policy, synth_task, run_b))
    real, calls = GRPOTrainer._update, []

    def dies_in_the_second_grpo(self, *a, **k):
        calls.append(1)
        if len(calls) == 4:  # iteration 2, step 1: its rollouts are stored, its update never happens
            raise KeyboardInterrupt("killed mid-GRPO")
        return real(self, *a, **k)

    monkeypatch.setattr(GRPOTrainer, "_update", dies_in_the_second_grpo)
    with pytest.raises(KeyboardInterrupt):
        run_loop(cfg, log=lambda m: None)
    assert not (run_b / "iter-2" / "grpo" / "final").exists()
    monkeypatch.setattr(GRPOTrainer, "_update", real)
    with pytest.raises(Exception, match="--resume"):
        run_loop(cfg, log=lambda m: None)  # without --resume an existing run is refused
    run_loop(cfg, resume=True, log=lambda m: None)
    assert outputs(run_b) == outputs(run_a)
    for rel in ("iter-1/verify/pairs.jsonl", "iter-2/verify/pairs.jsonl"):
        assert (run_b / rel).read_text() == (run_a / rel).read_text(), rel
    responses = lambda d: [r["response"] for r in read_jsonl(d / "iter-2" / "grpo" / "rollouts.jsonl")]
    assert responses(run_b) == responses(run_a)


def test_shell_pipeline_produces_the_same_stage_outputs(uninterrupted, warm_policy, synth_task, tmp_path):
    run_a, _ = uninterrupted
    run_c = tmp_path / "c"
    config = tmp_path / "loop.yaml"
    config.write_text(yaml.safe_dump(loop_dict(warm_policy, synth_task, run_c, iterations=1)))
    env = {**os.environ, "EVAL": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "pipeline.sh"), str(config)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for rel in ("iter-1/grpo/rollouts.jsonl", "iter-1/verify/pairs.jsonl"):
        a = [(r.get("rollout_id") or r.get("pair_id"), r.get("response") or r.get("chosen")) for r in read_jsonl(run_a / rel)]
        c = [(r.get("rollout_id") or r.get("pair_id"), r.get("response") or r.get("chosen")) for r in read_jsonl(run_c / rel)]
        assert a == c, rel
    assert (run_c / "iter-1" / "dpo" / "final" / "done.json").exists()
    # rerunning a finished pipeline is a no-op
    again = subprocess.run(["bash", str(REPO / "scripts" / "pipeline.sh"), str(config)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0


@pytest.mark.slow
def test_sigkill_of_the_loop_process_inside_iteration_2_grpo_then_resume(uninterrupted, warm_policy, synth_task,
                                                                         tmp_path):
    """A real ``veripo loop`` process SIGKILLed once iteration 2's GRPO has logged a step, then ``--resume``d:
    the same files, the same pairs and the same iteration-2 rollouts as the uninterrupted loop."""
    from kill_fixtures import lines_in, run_ok, sigkill_when, veripo_cmd

    run_a, _ = uninterrupted
    run_b = tmp_path / "b"
    config = tmp_path / "loop.yaml"
    config.write_text(yaml.safe_dump(loop_dict(warm_policy, synth_task, run_b)))
    cmd = veripo_cmd("loop", "-c", str(config))
    sigkill_when(cmd, lambda: lines_in(run_b / "iter-2" / "grpo" / "metrics.jsonl") >= 1)
    assert not (run_b / "iter-2" / "grpo" / "final").exists()
    run_ok(cmd + ["--resume"])
    assert outputs(run_b) == outputs(run_a)
    for rel in ("iter-1/verify/pairs.jsonl", "iter-2/verify/pairs.jsonl"):
        assert (run_b / rel).read_text() == (run_a / rel).read_text(), rel
    responses = lambda d: [r["response"] for r in read_jsonl(d / "iter-2" / "grpo" / "rollouts.jsonl")]
    assert responses(run_b) == responses(run_a)
