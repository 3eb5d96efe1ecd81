"""Frame transforms on real mp4s, reasoning metrics with judges, and the checkpoint report."""
import json

import numpy as np
import pytest

from veripo.eval.reasoning_metrics import default_judge_fn, reasoning_metrics
from veripo.eval.report import write_report
from veripo.eval.robustness import (parse_frame_transform, read_frames, relative_degradation, robustness_table,
                                    transform_clip)
from veripo.video.write import write_mp4


@pytest.fixture
def clip(tmp_path):
    frames = np.zeros((16, 32, 32, 3), np.uint8)
    for i in range(16):
        frames[i] = i * 15
    return write_mp4(tmp_path / "src.mp4", frames, fps=8)


def _levels(frames):
    return [int(round(f.mean() / 15)) for f in frames]


def test_stride_keeps_duration_at_lower_rate(clip, tmp_path):
    out = transform_clip(clip, tmp_path / "s.mp4", parse_frame_transform("stride:4"), "x")
    frames, fps = read_frames(out)
    assert len(frames) == 4 and fps == pytest.approx(2.0)
    assert _levels(frames) == [0, 4, 8, 12]


def test_drop_freezes_frames_deterministically(clip, tmp_path):
    t = parse_frame_transform("drop:0.5", seed=3)
    a = read_frames(transform_clip(clip, tmp_path / "a.mp4", t, "clip-1"))[0]
    b = read_frames(transform_clip(clip, tmp_path / "b.mp4", t, "clip-1"))[0]
    levels = _levels(a)
    assert len(a) == 16 and levels == _levels(b)
    assert levels[0] == 0 and all(x <= i for i, x in enumerate(levels))    # a frame shows itself or an earlier one
    assert all(y >= x for x, y in zip(levels, levels[1:]))
    assert levels == t.frame_sources(16, "clip-1")                         # the decoded clip is the plan
    kept = [len(set(t.frame_sources(100, f"c{i}"))) / 100 for i in range(100)]
    assert 0.45 < sum(kept) / len(kept) < 0.56                             # about half the frames dropped
    assert t.frame_sources(16, "clip-2") != t.frame_sources(16, "clip-1")  # seeded per clip
    with pytest.raises(ValueError):
        parse_frame_transform("drop:1.5")


def test_corrupt_video_is_a_video_error(tmp_path):
    from veripo.errors import VideoError

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(VideoError, match="bad.mp4"):
        read_frames(bad)


def test_relative_degradation():
    assert relative_degradation(0.8, 0.6) == pytest.approx(0.25)
    assert relative_degradation(0.0, 0.1) is None
    table = robustness_table({"overall": 0.5, "tasks": {"a": {"score": 0.5}}},
                             {"drop:0.5": {"overall": 0.25, "tasks": {"a": {"score": 0.4}}}})
    assert table["perturbations"]["drop:0.5"]["degradation"] == pytest.approx(0.5)
    assert table["perturbations"]["drop:0.5"]["tasks"]["a"]["degradation"] == pytest.approx(0.2)


PREDS = [
    {"response": "<think>The ball goes left, so A.</think><answer>A</answer>",
     "veripo_meta": {"completion_tokens": 12, "finish_reason": "stop"}},
    {"response": "<think>It moves right, so the answer is B.</think><answer>A</answer>",
     "veripo_meta": {"completion_tokens": 14, "finish_reason": "stop"}},
    {"response": "<think>I count 3, so the count is 3.</think><answer>4</answer>",
     "veripo_meta": {"completion_tokens": 9, "finish_reason": "stop"}},
    {"response": "A", "veripo_meta": {"completion_tokens": 1, "finish_reason": "length"}},
]


def test_reasoning_metrics_with_custom_judge():
    seen = []

    def judge(question, think, answer):
        seen.append((think, answer))
        return "INCONSISTENT" if "is 3" in think else ("garbage!" if "right" in think else "consistent")

    m = reasoning_metrics(PREDS, judge_fn=judge)
    assert m["mean_response_tokens"] == pytest.approx(36 / 4)
    assert m["format_compliance"] == pytest.approx(0.75)
    assert m["finish_length_rate"] == pytest.approx(0.25)
    inc = m["inconsistency"]
    assert len(seen) == 3                                     # the unformatted response is not judged
    assert (inc["consistent"], inc["inconsistent"], inc["unknown"]) == (1, 1, 1)
    assert inc["rate"] == pytest.approx(0.5)


def test_default_judge_is_the_verifier_rule_judge():
    fn, source = default_judge_fn()
    assert fn is not None, source
    m = reasoning_metrics(PREDS, judge_fn="default")
    inc = m["inconsistency"]
    assert inc["judge"] == source
    assert (inc["consistent"], inc["inconsistent"]) == (1, 2)   # B-vs-A and 3-vs-4 disagree; the first agrees
    assert inc["rate"] == pytest.approx(2 / 3)
    assert reasoning_metrics(PREDS, judge_fn=None)["inconsistency"]["skipped"] is True


def test_failing_judge_does_not_lose_the_eval():
    def judge(q, t, a):
        raise TimeoutError("judge down")

    inc = reasoning_metrics(PREDS, judge_fn=judge)["inconsistency"]
    assert inc["unknown"] == 3 and inc["judge_errors"] == 3 and inc["rate"] is None


def _results(path, overall, tasks, tokens, transform="none"):
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({
        "benchmark": "vsibench", "match": "strict", "aggregation": "mean of task types", "overall": overall,
        "tasks": {t: {"score": s, "n": 3} for t, s in tasks.items()}, "settings": {"frame_transform": transform},
        "reasoning": {"mean_response_tokens": tokens, "format_compliance": 1.0, "inconsistency": {"rate": 0.1}}}))


def test_report_tables_and_plot(tmp_path):
    _results(tmp_path / "iter0", 0.25, {"route_planning": 0.2, "object_counting": 0.3}, 120.0)
    _results(tmp_path / "iter1", 0.5, {"route_planning": 0.4, "object_counting": 0.6}, 180.5)
    paths = write_report([tmp_path / "iter0", tmp_path / "iter1"], tmp_path / "report")
    md = paths["markdown"].read_text()
    assert "| task | iter0 | iter1 |" in md
    assert "| route_planning | 20.0 (n=3) | 40.0 (n=3) |" in md
    assert "| **overall** | **25.0** | **50.0** |" in md
    assert "| mean response tokens | 120.0 | 180.5 |" in md
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["iter1"]["vsibench"]["overall"] == 0.5


def test_report_robustness_from_perturbed_runs(tmp_path):
    ckpt = tmp_path / "iter1"
    _results(ckpt / "vsi", 0.5, {"route_planning": 0.5}, 100.0)
    _results(ckpt / "vsi_drop", 0.4, {"route_planning": 0.4}, 100.0, transform="drop:0.3")
    paths = write_report([ckpt], tmp_path / "report")
    md = paths["markdown"].read_text()
    assert "| iter1 | vsibench | drop:0.3 | 50.0 | 40.0 | 20.0 |" in md
    rob = json.loads(paths["json"].read_text())["robustness"]["iter1"]["vsibench"]
    assert rob["perturbations"]["drop:0.3"]["degradation"] == pytest.approx(0.2)
