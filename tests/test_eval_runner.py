"""The eval runner on real mp4 files: batching, resume, bad videos set aside, frame transforms, settings.

``FrameCountEngine`` is a test double for the *model* only: it decodes each clip it is given (PyAV) and answers
with facts about it, so the test sees exactly what the runner fed the engine. The real engine (HFEngine on the
tiny model) runs in test_eval_end_to_end.py.
"""
import json

import numpy as np
import pytest

from veripo.rollout.engine import EngineCapabilities
from veripo.errors import VeripoError
from veripo.eval.robustness import read_frames
from veripo.eval.runner import EvalSettings, run_eval
from veripo.generation.types import Completion
from veripo.video.write import write_mp4


class FrameCountEngine:
    """Answers "<think>..</think><answer>LETTER</answer>": A if the clip has >= 8 distinct frames, else B."""

    capabilities = EngineCapabilities(prompt_modes=True)  # reads .reasoning, as the hf engine does

    def __init__(self, fail_on=(), stop_after=None):
        self.calls = []
        self.fail_on = set(fail_on)
        self.stop_after = stop_after
        self.reasoning = True

    def generate(self, samples, n=1, temperature=0.0, max_new_tokens=256):
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise KeyboardInterrupt
        self.calls.append([s.problem_id for s in samples])
        out = []
        for s in samples:
            if s.problem_id in self.fail_on:
                raise RuntimeError(f"cannot decode {s.path}")
            frames, fps = read_frames(s.path)
            distinct = len({f.tobytes() for f in frames})
            letter = "A" if distinct >= 8 else "B"
            text = f"<think>I see {distinct} distinct frames at {fps:g} fps, so {letter}.</think><answer>{letter}</answer>"
            out.append([Completion(text=text, token_ids=list(range(len(text.split()))), logps=[],
                                   finish_reason="stop")])
        return out


def _clip(path, n=16):
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    for i in range(n):
        frames[i, :, : 2 * (i + 1)] = 255  # every frame differs
    return write_mp4(path, frames, fps=8)


@pytest.fixture
def synthetic_bench(tmp_path):
    rows = []
    for i in range(5):
        _clip(tmp_path / "videos" / f"v{i}.mp4")
        rows.append({"problem_id": f"q{i}", "problem": "Does the bar move smoothly?", "problem_type": "multiple choice",
                     "options": ["A. yes", "B. no"], "solution": "<answer>A</answer>", "path": f"videos/v{i}.mp4",
                     "data_type": "video", "task": "motion" if i % 2 else "color"})
    rows.append({"problem_id": "q_missing", "problem": "?", "problem_type": "multiple choice", "options": ["A. x", "B. y"],
                 "solution": "A", "path": "videos/missing.mp4", "data_type": "video"})
    ann = tmp_path / "test.jsonl"
    ann.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    return ann


def settings(ann, **kw):
    return EvalSettings(benchmark="synthetic", annotations=str(ann), model="double", batch_size=2, **kw)


def test_run_scores_and_sets_aside_bad_rows(synthetic_bench, tmp_path):
    out = tmp_path / "run"
    engine = FrameCountEngine(fail_on={"synthetic:q3"})
    res = run_eval(settings(synthetic_bench), engine, out, judge_fn=None, log=lambda m: None)
    assert [len(c) for c in engine.calls] == [2, 2, 1, 1, 1]  # batch with q3 retried one by one
    assert res["n_scored"] == 4 and res["overall"] == 1.0
    assert res["counts"]["set_aside"] == 3
    reasons = " ".join(res["set_aside"])
    assert "missing.mp4" in reasons and "not valid JSON" in reasons and "synthetic:q3" in reasons
    assert set(res["tasks"]) == {"color", "motion"}
    assert res["settings"]["fps"] == 2.0 and res["settings"]["max_pixels"] == 128 * 28 * 28
    assert res["reasoning"]["format_compliance"] == 1.0
    saved = json.loads((out / "results.json").read_text())
    assert saved["overall"] == 1.0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {p["problem_id"] for p in preds} == {"q0", "q1", "q2", "q4"}
    assert all("response" in p and p["veripo_meta"]["finish_reason"] == "stop" for p in preds)


def test_resume_skips_answered_rows(synthetic_bench, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_eval(settings(synthetic_bench), FrameCountEngine(stop_after=1), out, judge_fn=None, log=lambda m: None)
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2  # the first batch is on disk
    engine = FrameCountEngine()
    res = run_eval(settings(synthetic_bench), engine, out, judge_fn=None, log=lambda m: None)
    assert sorted(sum(engine.calls, [])) == ["synthetic:q2", "synthetic:q3", "synthetic:q4"]
    assert res["n_scored"] == 5 and res["n_malformed"] == 0


def test_rerun_with_other_generation_settings_is_refused(synthetic_bench, tmp_path):
    out = tmp_path / "run"
    run_eval(settings(synthetic_bench, limit=1), FrameCountEngine(), out, judge_fn=None, log=lambda m: None)
    with pytest.raises(VeripoError, match="fps"):
        run_eval(settings(synthetic_bench, limit=1, fps=4.0), FrameCountEngine(), out, judge_fn=None,
                 log=lambda m: None)


def test_frame_transform_reaches_the_engine(synthetic_bench, tmp_path):
    clean = run_eval(settings(synthetic_bench), FrameCountEngine(), tmp_path / "clean", judge_fn=None,
                     log=lambda m: None)
    strided = run_eval(settings(synthetic_bench, frame_transform="stride:4"), FrameCountEngine(),
                       tmp_path / "stride", judge_fn=None, log=lambda m: None)
    # 16 frames at stride 4 -> 4 distinct frames -> the engine answers B -> all wrong
    assert clean["overall"] == 1.0 and strided["overall"] == 0.0
    preds = [json.loads(line) for line in (tmp_path / "stride" / "predictions.jsonl").read_text().splitlines()]
    assert all("/clips/stride_4/" in p["veripo_meta"]["video"] for p in preds)
    assert "4 distinct frames at 2 fps" in preds[0]["response"]


def test_direct_prompt_needs_a_capable_engine(synthetic_bench, tmp_path):
    class NoModeEngine:
        def generate(self, samples, n=1, temperature=0.0, max_new_tokens=256):
            return [[Completion("B", [], [], "stop")] for _ in samples]

    with pytest.raises(VeripoError, match="direct"):
        run_eval(settings(synthetic_bench, prompt="direct"), NoModeEngine(), tmp_path / "d", judge_fn=None,
                 log=lambda m: None)
    engine = FrameCountEngine()
    run_eval(settings(synthetic_bench, prompt="direct", limit=1), engine, tmp_path / "d2", judge_fn=None,
             log=lambda m: None)
    assert engine.reasoning is False


def test_repetition_penalty_reaches_the_engine_and_guards_resume(tmp_path):
    """VerIPO's evaluation samples with repetition_penalty 1.05: the setting reaches the engine as SamplingParams,
    is part of what a resumed run must repeat, and an older settings.json without it counts as the default 1.0."""
    from veripo.eval.runner import EvalSettings, _check_resume, _generate

    seen = []

    class Engine:
        capabilities = EngineCapabilities(sampling_params=True)

        def generate(self, samples, n=1, temperature=0.0, max_new_tokens=256, params=None):
            seen.append(params)
            return [[type("C", (), {"text": "<answer>A</answer>"})()] for _ in samples]

    _generate(Engine(), ["q"], EvalSettings(repetition_penalty=1.05, temperature=0.0, max_new_tokens=9))
    assert seen[-1].repetition_penalty == 1.05 and seen[-1].max_new_tokens == 9
    _generate(Engine(), ["q"], EvalSettings())
    assert seen[-1] is None  # default 1.0: the plain keyword call, as before

    class Plain:
        def generate(self, samples, n=1, temperature=0.0, max_new_tokens=256):
            return [["x"] for _ in samples]

    with pytest.raises(VeripoError, match="takes no sampling parameters"):
        _generate(Plain(), ["q"], EvalSettings(repetition_penalty=1.05))
    settings = EvalSettings(benchmark="synthetic")
    _check_resume(tmp_path, settings)
    old = json.loads((tmp_path / "settings.json").read_text())
    del old["repetition_penalty"]  # written by an older version
    (tmp_path / "settings.json").write_text(json.dumps(old))
    _check_resume(tmp_path, settings)  # same settings: resumes
    with pytest.raises(VeripoError, match="repetition_penalty"):
        _check_resume(tmp_path, EvalSettings(benchmark="synthetic", repetition_penalty=1.05))
