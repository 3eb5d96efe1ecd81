"""A killed ``veripo verify``, ``dpo`` or ``eval run``, run again, gives the uninterrupted run's outputs: the same
verdicts and pairs, the same DPO weights (to 1e-6) with each step logged once, the same predictions and results;
no row twice, no torn row, and finished work not done again. Each stage has a fast in-process crash (an exception
at the n-th call, the file's last line then torn as a kill inside its write leaves it) and a (slow) SIGKILL of the
real command on the tiny kit (verify's, at ~13 s, runs by default; DPO's and eval's load the model three times
and are marked slow)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fastapi import FastAPI

from veripo.dpo.trainer import DPOTrainer
from veripo.eval.runner import run_eval
from veripo.io_utils import read_jsonl
from veripo.verifier.config import VerifierConfig
from veripo.verifier.examples import write_example_rollouts
from veripo.verifier.pipeline import PARTIAL, Verifier, run_verification
from veripo.verifier.serving import BackgroundServer

from kill_fixtures import (assert_same_weights, crash_at, lines_in, run_ok, sigkill_when, tear_last_line,
                           veripo_cmd)
from kit_fixtures import tiny_kit_dir  # noqa: F401
from test_dpo_trainer import dpo_cfg, write_pairs
from test_eval_runner import FrameCountEngine, settings, synthetic_bench  # noqa: F401
from train_fixtures import VIDEO, synth_task, task_kit, warm_policy  # noqa: F401


# ------------------------------------------------------------------------------------------------ verify
def verdict_view(out: Path) -> list[dict]:
    """verdicts.jsonl without the judge's wall-clock latency (the one field two equal runs differ in)."""
    return [{k: v for k, v in r.items() if k != "judge_latency_s"} for r in read_jsonl(out / "verdicts.jsonl")]


def assert_same_verification(out: Path, whole: Path) -> None:
    assert verdict_view(out) == verdict_view(whole)
    assert read_jsonl(out / "pairs.jsonl") == read_jsonl(whole / "pairs.jsonl")
    ids = [v["rollout_id"] for v in verdict_view(out)]
    assert len(ids) == len(set(ids)) == 12  # one verdict per rollout, none torn
    assert not (out / PARTIAL).exists()


def test_verify_crashed_mid_run_with_a_torn_partial_resumes_without_judging_twice(tmp_path, monkeypatch):
    rollouts = write_example_rollouts(tmp_path / "rollouts.jsonl")
    cfg = VerifierConfig(batch_size=2)
    run_verification(rollouts, tmp_path / "whole", cfg, progress=False)
    out = tmp_path / "out"
    verifier = Verifier(cfg)
    crash_at(verifier, "verify", 3, monkeypatch, lambda: run_verification(rollouts, out, cfg, verifier=verifier,
                                                                          progress=False))
    assert lines_in(out / PARTIAL) == 4 and not (out / "verdicts.jsonl").exists()  # two batches on disk
    tear_last_line(out / PARTIAL)  # the kill tore the 4th verdict
    again = Verifier(cfg)
    stats = run_verification(rollouts, out, cfg, verifier=again, progress=False)
    assert stats["resumed_verdicts"] == 3 and again.judge_calls == 9  # the 3 whole verdicts are not judged again
    assert_same_verification(out, tmp_path / "whole")


def slow_judge_app(seconds: float):
    """An OpenAI-compatible judge on loopback that takes ``seconds`` per call (so a run can be killed mid-way)."""
    app, calls = FastAPI(), []

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        calls.append(1)
        await asyncio.sleep(seconds)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": '{"verdict": "CONSISTENT"}'}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return app, calls


def test_sigkill_of_verify_then_rerun_equals_the_uninterrupted_run(tmp_path):
    rollouts = write_example_rollouts(tmp_path / "rollouts.jsonl")
    app, calls = slow_judge_app(0.25)
    with BackgroundServer(app) as url:
        def cmd(out):
            return veripo_cmd("verify", "--rollouts", str(rollouts), "--out", str(out), "--judge", "openai",
                              "--judge-url", url + "/v1", "--judge-model", "m", "--no-progress", "batch_size=1",
                              "judge.concurrency=1", "judge.fallback=none")
        run_ok(cmd(tmp_path / "whole"))
        out = tmp_path / "out"
        sigkill_when(cmd(out), lambda: lines_in(out / PARTIAL) >= 4)
        done = len([r for r in read_jsonl(out / PARTIAL, errors=[]) if r.get("consistency") != "unjudged"])
        before = len(calls)
        run_ok(cmd(out))
        assert len(calls) - before == 12 - done  # what was judged before the kill is not judged again
    assert_same_verification(out, tmp_path / "whole")
    assert {v["consistency"] for v in verdict_view(out)} == {"consistent"}  # every rollout went to the judge


# ------------------------------------------------------------------------------------------------ DPO
DPO_RUN = ["batch_size=4", "save_every=2", "heldout_fraction=0", "epochs=3", "optim.lr=5e-4"]  # 12 steps


@pytest.fixture(scope="module")
def dpo_pairs(synth_task, tmp_path_factory) -> Path:
    return write_pairs(synth_task, tmp_path_factory.mktemp("dpo-pairs") / "pairs.jsonl", n=16)


@pytest.fixture(scope="module")
def dpo_whole(warm_policy, dpo_pairs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dpo-whole") / "run"
    DPOTrainer(dpo_cfg(warm_policy, dpo_pairs, out, *DPO_RUN)).train()
    return out


def assert_same_dpo_run(out: Path, whole: Path) -> None:
    metrics, expected = read_jsonl(out / "metrics.jsonl"), read_jsonl(whole / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(12))  # each step logged once
    for got, want in zip(metrics, expected):
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-6), got["step"]
    assert_same_weights(whole / "final", out / "final")


def test_dpo_crashed_mid_run_resumes_into_the_uninterrupted_run(warm_policy, dpo_pairs, dpo_whole, tmp_path,
                                                                monkeypatch):
    cfg = dpo_cfg(warm_policy, dpo_pairs, tmp_path / "run", *DPO_RUN)
    trainer = DPOTrainer(cfg)
    crash_at(trainer, "pair_losses", 6, monkeypatch, trainer.train)  # steps 0-4 done, checkpoint after step 3
    tear_last_line(tmp_path / "run" / "metrics.jsonl")
    DPOTrainer(cfg).train(resume=True)
    assert_same_dpo_run(tmp_path / "run", dpo_whole)


@pytest.mark.slow
def test_sigkill_of_dpo_then_resume_equals_the_uninterrupted_run(warm_policy, dpo_pairs, dpo_whole, tmp_path):
    out = tmp_path / "run"
    cmd = veripo_cmd("dpo", f"model.path={warm_policy}", "model.freeze_vision=false", f"pairs_file={dpo_pairs}",
                     f"out_dir={out}", "tensorboard=false", *VIDEO, *DPO_RUN)
    sigkill_when(cmd, lambda: lines_in(out / "metrics.jsonl") >= 5)  # checkpoint 4 exists, step 4 is logged
    run_ok(cmd + ["--resume"])
    assert_same_dpo_run(out, dpo_whole)


# ------------------------------------------------------------------------------------------------ eval run
TIMING = ("generation_seconds", "counts")  # wall clock, and how many rows this run answered


def prediction_view(out: Path) -> list[dict]:
    rows = read_jsonl(out / "predictions.jsonl")
    for r in rows:
        r["veripo_meta"].pop("seconds")
    return rows


def eval_outputs(d: Path) -> tuple[dict, str]:
    """results.json without its timing fields, and scores.jsonl; the run folder's own path replaced."""
    results = {k: v for k, v in json.loads((d / "results.json").read_text().replace(str(d), "OUT")).items()
               if k not in TIMING}
    return results, (d / "scores.jsonl").read_text().replace(str(d), "OUT")


def assert_same_eval(out: Path, whole: Path) -> None:
    got, want = prediction_view(out), prediction_view(whole)
    assert sorted(got, key=lambda r: r["problem_id"]) == sorted(want, key=lambda r: r["problem_id"])
    assert len({r["problem_id"] for r in got}) == len(got)  # no question answered twice
    assert eval_outputs(out) == eval_outputs(whole)


@pytest.mark.parametrize("tear", ["half a line", "no newline"])
def test_eval_run_crashed_with_a_torn_last_prediction_reruns_into_the_uninterrupted_run(synthetic_bench, tmp_path,
                                                                                         tear):
    quiet = dict(judge_fn=None, log=lambda m: None)
    run_eval(settings(synthetic_bench), FrameCountEngine(), tmp_path / "whole", **quiet)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_eval(settings(synthetic_bench), FrameCountEngine(stop_after=2), out, **quiet)
    assert lines_in(out / "predictions.jsonl") == 4
    tear_last_line(out / "predictions.jsonl", keep_newline=tear == "no newline")
    engine = FrameCountEngine()
    run_eval(settings(synthetic_bench), engine, out, **quiet)
    assert sorted(sum(engine.calls, [])) == ["synthetic:q3", "synthetic:q4"]  # q0-q2 kept, the torn q3 redone
    assert_same_eval(out, tmp_path / "whole")


@pytest.mark.slow
def test_sigkill_of_eval_run_then_rerun_equals_the_uninterrupted_run(warm_policy, synth_task, tmp_path):
    def cmd(out):
        return veripo_cmd("eval", "run", "--benchmark", "synthetic", "--annotations", str(synth_task / "test.jsonl"),
                          "--model", str(warm_policy), "--out", str(out), "--engine", "hf", "--batch-size", "1",
                          "--max-new-tokens", "48", "--num-frames", "8", "--min-pixels", "3136",
                          "--max-pixels", "3136", "--no-judge")
    run_ok(cmd(tmp_path / "whole"))
    out = tmp_path / "run"
    sigkill_when(cmd(out), lambda: lines_in(out / "predictions.jsonl") >= 3)
    run_ok(cmd(out))
    assert_same_eval(out, tmp_path / "whole")


def test_repair_torn_tail_cuts_a_last_line_without_its_newline_even_a_long_one(tmp_path):
    from veripo.io_utils import repair_torn_tail

    path = tmp_path / "f.jsonl"
    whole = b'{"a": 1}\n{"a": 2}\n'
    for tail in (b'{"a": 3}', b'{"a": "' + b"x" * 200_000):  # whole JSON but no newline; longer than a read block
        path.write_bytes(whole + tail)
        assert repair_torn_tail(path) == len(tail) and path.read_bytes() == whole
    assert repair_torn_tail(path) == 0 and path.read_bytes() == whole  # a clean file is left alone
    path.write_bytes(b'{"a": 1')
    assert repair_torn_tail(path) == 7 and path.read_bytes() == b""
