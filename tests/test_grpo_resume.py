"""A resumed GRPO run is the run it resumes: the same rollouts, the same weights, nothing logged twice, and a step
a kill left half-written in rollouts.jsonl sampled again (not replayed with a missing rollout). Faults injected:
a crash before an update with a torn last line, a crash in the middle of a checkpoint save, and (slow) a SIGKILL
of the ``veripo grpo`` process."""
from __future__ import annotations

from pathlib import Path

import pytest

from veripo.grpo.trainer import GRPOTrainer
from veripo.io_utils import read_jsonl

from kill_fixtures import assert_same_weights, crash_at, lines_in, run_ok, sigkill_when, veripo_cmd
from kit_fixtures import tiny_kit_dir  # noqa: F401
from test_grpo_trainer import grpo_cfg
from train_fixtures import VIDEO, synth_task, task_kit, warm_policy  # noqa: F401

STEPS = ["run.steps=5", "run.save_every=2"]


@pytest.fixture(scope="module")
def whole_run(warm_policy, synth_task, tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one must reproduce."""
    out = tmp_path_factory.mktemp("grpo-whole") / "run"
    GRPOTrainer(grpo_cfg(warm_policy, synth_task / "train.jsonl", out, *STEPS)).train()
    return out


def rollout_view(path):
    return [(r["rollout_id"], r["response"], r["token_ids"]) for r in read_jsonl(path)]


def assert_same_run(out: Path, whole: Path) -> None:
    assert rollout_view(out / "rollouts.jsonl") == rollout_view(whole / "rollouts.jsonl")
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl")] == [0, 1, 2, 3, 4]  # each step logged once
    assert_same_weights(whole / "final", out / "final")


def test_killed_run_with_a_torn_store_resumes_into_the_uninterrupted_run(warm_policy, synth_task, whole_run,
                                                                         tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", out, *STEPS)
    trainer = GRPOTrainer(cfg)
    crash_at(trainer, "_update", 4, monkeypatch, trainer.train)  # steps 0-3 stored, checkpoint after 2, 3 not trained
    store = out / "rollouts.jsonl"
    lines = store.read_text().splitlines(keepends=True)
    assert sum(1 for line in lines if '"step": 3' in line) == 8
    store.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # the kill tore step 3's last line
    GRPOTrainer(cfg).train(resume=True)
    assert_same_run(out, whole_run)  # step 2 replayed, step 3 sampled again (7 of 8 stored), 4 sampled


def test_kill_during_a_checkpoint_save_leaves_the_previous_checkpoint_usable(warm_policy, synth_task, whole_run,
                                                                             tmp_path, monkeypatch):
    import veripo.train.checkpoint as checkpoint

    out = tmp_path / "run"
    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", out, *STEPS)
    real, saves = checkpoint.save_policy, []

    def dies_in_the_second_save(model, processor, folder, *a, **k):
        saves.append(folder)
        real(model, processor, folder, *a, **k)
        if len(saves) == 2:  # the step-4 checkpoint's policy is written, its trainer state not yet
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(checkpoint, "save_policy", dies_in_the_second_save)
    with pytest.raises(KeyboardInterrupt):
        GRPOTrainer(cfg).train()
    monkeypatch.setattr(checkpoint, "save_policy", real)
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith(".")) == ["step-000002"]
    GRPOTrainer(cfg).train(resume=True)
    assert_same_run(out, whole_run)


@pytest.mark.slow
def test_sigkill_of_the_grpo_process_then_resume_equals_the_uninterrupted_run(warm_policy, synth_task, whole_run,
                                                                              tmp_path):
    out = tmp_path / "run"
    args = [f"model.path={warm_policy}", "model.freeze_vision=false", f"data.train_file={synth_task / 'train.jsonl'}",
            f"run.out_dir={out}", "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=32",
            "rollout.temperature=1.0", "run.tensorboard=false", "optim.lr=1e-4", *VIDEO, *STEPS]
    cmd = veripo_cmd("grpo", *args)
    sigkill_when(cmd, lambda: lines_in(out / "metrics.jsonl") >= 3)  # step 2 is logged (checkpoint 2 exists)
    run_ok(cmd + ["--resume"])
    assert_same_run(out, whole_run)
