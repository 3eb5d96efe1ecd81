"""Fault injection, NaN and overflow: a non-finite loss or gradient never updates the weights; non-finite or
overflowed weights are never saved; a run stuck on NaN stops with one clear line; a NaN reward or accuracy is
neither fatal nor silent."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from veripo.train.distributed import TrainEngine
from veripo.train.nonfinite import NonFiniteError, StepGuard, check_finite_weights

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO, synth_task, task_kit  # noqa: F401


def engine(max_consecutive: int = 5):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    te = TrainEngine.create(model, opt, sched)
    te.guard = StepGuard(max_consecutive)
    return model, te


def one_step(model, te, scale: float) -> float:
    loss = model(torch.ones(1, 3)).sum() * scale
    te.backward(loss)
    return te.step(1.0)


def test_a_nan_loss_step_is_skipped_grads_zeroed_and_counted(caplog):
    model, te = engine()
    before = [p.detach().clone() for p in model.parameters()]
    with caplog.at_level("WARNING", logger="veripo.train.nonfinite"):
        norm = one_step(model, te, float("nan"))
    assert norm != norm  # the NaN norm is reported
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # no update
    assert all(p.grad is None for p in model.parameters())  # gradients zeroed
    assert te.guard.skipped == 1 and te.guard.consecutive == 1
    assert "non-finite loss nan at optimiser step 1: update skipped" in caplog.text
    one_step(model, te, 1.0)  # a good step updates and resets the run of skips
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert te.guard.consecutive == 0 and te.guard.skipped == 1
    assert te.scheduler.last_epoch == 2  # the schedule advanced on both steps


def test_an_inf_gradient_norm_is_skipped_even_with_a_finite_loss():
    model, te = engine()
    before = model.weight.detach().clone()
    loss = model(torch.ones(1, 3)).sum()
    te.backward(loss)
    model.weight.grad[0, 0] = float("inf")
    te.step(1.0)
    assert torch.equal(before, model.weight) and te.guard.skipped == 1


def test_consecutive_skips_stop_the_run_with_a_clear_message():
    model, te = engine(max_consecutive=3)
    one_step(model, te, float("nan"))
    one_step(model, te, float("inf"))
    with pytest.raises(NonFiniteError, match="3 optimiser steps in a row had a non-finite loss.*lower optim.lr"):
        one_step(model, te, float("nan"))


def test_a_step_an_external_optimiser_took_is_settled_after_the_fact():
    """DeepSpeed steps inside ``engine.step()``, so the guard learns the norm afterwards
    (``StepGuard.after_external_step``): a non-finite step the optimiser did not apply (DeepSpeed's own inf/NaN
    check skipped it) is a real skip, counted; one it applied cannot be undone and stops the run at once."""
    guard = StepGuard(max_consecutive=3)
    assert guard.after_external_step(1.5, applied=True) is False and guard.skipped == 0
    assert guard.after_external_step(float("inf"), applied=False) is True  # skipped by the optimiser itself
    assert guard.skipped == 1 and guard.consecutive == 1
    assert guard.after_external_step(2.0, applied=True) is False and guard.consecutive == 0
    guard.observe_loss(torch.tensor(float("nan")))
    with pytest.raises(NonFiniteError, match="applied an update with a non-finite loss nan"):
        guard.after_external_step(2.0, applied=True)  # the weights took a NaN step: no point going on


def test_non_finite_or_overflowed_weights_are_refused_naming_the_parameter(tmp_path):
    from veripo.models.lora import save_policy

    class Saveable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(2, 2)
            self.b = torch.nn.Linear(2, 2)

        def save_pretrained(self, path):
            torch.save(self.state_dict(), path / "w.pt")

    m = Saveable()
    save_policy(m, None, tmp_path / "ok")
    assert (tmp_path / "ok" / "w.pt").exists()
    with torch.no_grad():
        m.b.weight[1, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"parameter b.weight \(1 of 4 values are NaN/inf\)"):
        save_policy(m, None, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()
    with torch.no_grad():
        m.b.weight.fill_(0.1)
        m.a.bias[0] = 1e10  # GRPO with lr=1e10: finite, but every later forward is NaN
    with pytest.raises(NonFiniteError, match=r"parameter a.bias \(\|w\| reaches 1e\+10"):
        check_finite_weights(m)
    check_finite_weights(state_dict={"x": torch.ones(2)})


def test_checkpoint_refuses_nan_weights_and_keeps_the_last_good_one(tiny_kit_dir, tmp_path):  # noqa: F811
    from veripo.models import load_policy
    from veripo.train.checkpoint import latest_checkpoint, save_checkpoint

    model, processor = load_policy(tiny_kit_dir)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    good = save_checkpoint(tmp_path, 1, model, processor, opt, sched, {})
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(NonFiniteError, match="refusing to save non-finite weights"):
        save_checkpoint(tmp_path, 2, model, processor, opt, sched, {})
    assert latest_checkpoint(tmp_path) == good


def test_verifier_treats_a_nan_accuracy_as_a_failed_check(caplog):
    from veripo.data.schema import Sample
    from veripo.records import RolloutRecord
    from veripo.rewards import register_reward
    from veripo.verifier.config import VerifierConfig
    from veripo.verifier.pipeline import Verifier

    @register_reward("nan_accuracy_test")
    def nan_accuracy(response, sample):
        return float("nan")

    sample = Sample(problem_id="q", problem="Colour?", problem_type="multiple choice", data_type="text",
                    options=["A. red", "B. blue"], solution="<answer>A</answer>")
    rec = RolloutRecord(rollout_id="r0", step=0, group_id="g", sample=sample, prompt="p",
                        response="<think>It is red.</think><answer>A</answer>")
    cfg = VerifierConfig()
    cfg.accuracy_reward = "nan_accuracy_test"
    cfg.judge.kind = "rule"
    with caplog.at_level("WARNING", logger="veripo.verifier.checks"):
        (v,) = Verifier(cfg).verify([rec])
    assert v.accuracy == 0.0 and not v.correct and not v.good
    assert "accuracy_not_finite" in v.reasons
    assert "rollout r0: accuracy reward 'nan_accuracy_test' returned nan" in caplog.text
    json.dumps(v.to_dict(), allow_nan=False)  # strict JSON: no NaN reaches verdicts.jsonl / pairs.jsonl


@pytest.mark.slow
def test_dpo_with_lr_1e10_stops_or_refuses_to_save_and_leaves_no_nan_model(task_kit, synth_task, tmp_path):  # noqa: F811
    """Fault: ``veripo dpo optim.lr=1e10``. Before: loss NaN from step 1, exit 0, an all-NaN final model.
    Now: the NaN steps are skipped; the run stops (or the save is refused) with one line, and no final model."""
    from test_reliability_input import _pairs_file, jsonl_bytes

    pairs = _pairs_file(synth_task, tmp_path, n=8)
    for p in pairs:
        p["sample"]["path"] = str(synth_task / p["sample"]["path"])
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(jsonl_bytes(pairs))
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", VERIPO_MAX_NONFINITE_SKIPS="2")
    res = subprocess.run([sys.executable, "-m", "veripo.cli", "dpo", f"model.path={task_kit}",
                          "model.freeze_vision=false", f"pairs_file={path}", f"out_dir={out}", "tensorboard=false",
                          "heldout_fraction=0", "batch_size=2", "epochs=2", "optim.lr=1e10", "save_every=0", *VIDEO],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("veripo dpo: error: ") and ("non-finite" in last or "refusing to save" in last), last
    assert not (out / "final").exists()
