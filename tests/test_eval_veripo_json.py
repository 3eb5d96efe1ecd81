"""The ``veripo_json`` adapter: VerIPO's evaluation/json files read as published, scored with VerIPO's
calculate_score.py (spec §6.1). Fixtures: tests/fixtures/eval/veripo_json/*.json (made-up questions in the
published schema; video paths are placeholders except where a test writes the clips)."""
import json
from pathlib import Path

import numpy as np
import pytest

from veripo.rollout.engine import EngineCapabilities
from veripo.cli import main
from veripo.errors import DataError
from veripo.eval.benchmarks import get_adapter, read_records
from veripo.eval.predictions import score_prediction_rows, score_predictions_file
from veripo.eval.runner import EvalSettings, run_eval
from veripo.eval.scoring import mra
from veripo.eval.veripo_scoring import (MATH_CHECK, VERIPO_MRA_THRESHOLDS, fallback_math_equal, veripo_answer,
                                        veripo_item_score, veripo_mra, veripo_number)
from veripo.prompts import question_text
from veripo.generation.types import Completion
from veripo.video.write import write_mp4

FIX = Path(__file__).parent / "fixtures" / "eval" / "veripo_json"
VSI = FIX / "vsi_bench.json"

# response per VSI item, with its (strict = calculate_score.py, lenient) score worked out by hand
VSI_RESPONSES = {
    # counting 5 vs 4: rel. error 0.25 <= 1 - 0.75 = 0.25 -> theta .50..75 pass -> 6/10 both ways
    "vsi_bench_1": ("<think>I count 5 chairs.</think><answer>5</answer>", 0.6, 0.6),
    # 2.0 vs 2.5: rel. error 0.2; VerIPO's 1 - linspace()[6] = 0.19999999999999996 < 0.2 -> 6/10;
    # the harness's rounded thresholds let 0.80 pass -> 7/10
    "vsi_bench_2": ("<think>About two meters.</think><answer>2.0 meters</answer>", 0.6, 0.7),
    # gold B = "front-left": "B. front-left" fails VerIPO's rule ('f', 'e' are other letters a-j)
    "vsi_bench_3": ("<think>The desk is ahead, to the left.</think><answer>B. front-left</answer>", 0.0, 1.0),
    # "$B$" passes: no letter a-j other than b
    "vsi_bench_4": ("<think>It is on the right.</think><answer> $B$ </answer>", 1.0, 1.0),
    # "$100$." -> strip("$") -> "100$." -> "100$" is no float -> 0; lenient reads 100 vs 80 -> 0.6
    "vsi_bench_5": ("<think>Long table.</think><answer>$100$.</answer>", 0.0, 0.6),
    # no <answer> tags: VerIPO's span is empty -> 0; lenient falls back to the whole response -> 20.4
    "vsi_bench_6": ("The room is 20.4 square meters.", 0.0, 1.0),
    # a lone lower-case letter passes both rules
    "vsi_bench_7": ("<think>lamp first.</think><answer>d</answer>", 1.0, 1.0),
    # 12 vs 10: rel. error 0.2 again -> 0.6 (VerIPO) / 0.7 (rounded)
    "vsi_bench_8": ("<think>A dozen.</think><answer>$12$</answer>", 0.6, 0.7),
}
STRICT = (0.6 + 0.6 + 0 + 1 + 0 + 0 + 1 + 0.6) / 8       # 0.475 = calculate_score.py's "Accuracy"
LENIENT = (0.6 + 0.7 + 1 + 1 + 0.6 + 1 + 1 + 0.7) / 8    # 0.825


def vsi_rows():
    return [r for _, r in get_adapter("veripo_json").read_rows(VSI)]


def write_predictions(path, rows, responses):
    path.write_text("".join(json.dumps(dict(r, response=responses[r["question_id"]][0])) + "\n" for r in rows))
    return path


def test_reads_published_files_and_infers_the_benchmark():
    a = get_adapter("veripo_json")
    errors = []
    rows = {f.stem: [r for _, r in a.read_rows(f, errors)] for f in sorted(FIX.glob("*.json"))}
    assert not errors and {k: len(v) for k, v in rows.items()} == {
        "lvbench": 2, "mmvu": 3, "tomato": 2, "video_mme": 1, "vsi_bench": 8}
    assert all(r["veripo_subset"] == name for name, rs in rows.items() for r in rs)
    by = {r["question_id"]: r for r in rows["vsi_bench"]}
    counting = a.to_sample(by["vsi_bench_1"])
    assert counting.problem_type == "regression" and counting.solution == "4"
    assert counting.problem == "How many chair(s) are in this room?"
    assert counting.problem_id == "veripo_json:vsi_bench_1"
    direction = a.to_sample(by["vsi_bench_3"])
    assert direction.problem_type == "multiple choice" and direction.options == []   # inline, shown once
    assert direction.problem.endswith("D. back-left")                                # VerIPO strips the last line
    # the direct prompt is processed_question exactly
    assert question_text(direction, reasoning=False) == by["vsi_bench_3"]["processed_question"]
    reasoning = question_text(direction, reasoning=True)
    assert reasoning.count("A. back-right") == 1 and "<answer>" in reasoning
    # options for the lenient rule come from the inline text: "(A) 6" (LVBench), "A. x" (MMVU, TOMATO)
    assert a._build(rows["lvbench"][0])["options"] == ["A. 6", "B. 5", "C. 4", "D. 3"]
    assert a._build(rows["mmvu"][1])["options"][0] == "A. Impasto"
    assert a.to_sample(rows["tomato"][0]).problem == rows["tomato"][0]["processed_question"]
    assert a.item_id(rows["tomato"][0]) == "tomato/0215-06" and a.item_id(by["vsi_bench_1"]) == "vsi_bench_1"
    assert a.groups_of(rows["tomato"][1]) == {"subset": "tomato", "video_folder": "simulated"}


def test_vsi_bench_scores_match_calculate_score_by_hand():
    a = get_adapter("veripo_json")
    rows = vsi_rows()
    items = [a.score_row(r, VSI_RESPONSES[r["question_id"]][0]) for r in rows]
    assert [(it.score_strict, it.score_lenient) for it in items] == [
        (pytest.approx(VSI_RESPONSES[r["question_id"]][1]), pytest.approx(VSI_RESPONSES[r["question_id"]][2]))
        for r in rows]
    assert [it.kind for it in items] == ["mra", "mra", "mc", "mc", "mra", "mra", "mc", "mra"]
    res = a.aggregate(items)
    assert res["overall"] == pytest.approx(STRICT) and res["overall_by_match"]["lenient"] == pytest.approx(LENIENT)
    assert res["tasks"]["multiple choice"] == {"score": pytest.approx(2 / 3), "n": 3}
    assert res["groups"]["video_folder"]["scannetpp"] == {"score": 0.0, "n": 2}
    assert "math_check" not in res   # no non-VSI numeric item
    assert items[2].pred == "B. front-left" and items[5].pred is None   # calculate_score.py's extracted_answer


def test_mc_rule_edge_cases():
    def mc(resp, gold="B"):
        return veripo_item_score(resp, gold, vsi_bench=False)[2]

    assert mc("<answer>$B$</answer>") == 1.0
    assert mc("<answer>B. front-left</answer>") == 0.0
    assert mc("<answer>B</answer> tail <answer>C</answer>") == 1.0     # first span only
    assert mc("<answer>\nB\n</answer>") == 1.0                         # re.DOTALL, stripped
    assert mc("<answer><answer>B</answer>") == 1.0                     # stray tag removed
    assert mc("B") == 0.0                                              # no tags -> empty span -> wrong
    assert mc("<answer>B zz</answer>") == 1.0                          # only a-j count as other letters
    assert mc("<answer>K</answer>", gold="K") == 1.0                   # a letter past J
    assert veripo_answer("no tags") == ""
    kind, _, score = veripo_item_score("<answer>yes</answer>", "yes", vsi_bench=True)
    assert kind == "mra" and score == 0.0                              # lower-case gold: not MC in VerIPO


def test_mra_is_numpy_exact():
    assert len(VERIPO_MRA_THRESHOLDS) == 10
    assert np.allclose(VERIPO_MRA_THRESHOLDS, [0.5 + 0.05 * i for i in range(10)])
    assert veripo_mra(5, 4) == pytest.approx(0.6) and mra(5, 4) == pytest.approx(0.6)
    assert veripo_mra(12, 10) == pytest.approx(0.6) and mra(12, 10) == pytest.approx(0.7)   # float boundary
    assert veripo_mra(10, 10) == 1.0 and veripo_mra(25, 10) == 0.0
    assert veripo_mra(None, 10) == 0.0 and veripo_mra(3, 0) == 0.0 and veripo_mra(3, None) == 0.0
    assert veripo_number("3.5 meters") == 3.5 and veripo_number("$3.5$") == 3.5
    assert veripo_number("3.5.") == 3.5 and veripo_number("$100$.") is None
    assert veripo_number("3.5\nmeters") is None                        # split(' '), not split()


def test_non_vsi_numeric_uses_the_math_check():
    assert "math_verify" in MATH_CHECK
    cases = [("<think>maybe 3</think><answer> $2$ </answer>", "2", 1.0),
             ("so it is 3.5", "3.50", 1.0),                              # whole response, last number
             ("<answer>\\frac{24}{7}</answer>", "['24/7', '3.429', '3.43']", 1.0),   # calculate_score.py quirk
             ("<answer>3.43</answer>", "24/7", 0.0),
             ("<answer>1,200</answer>", "1200", 1.0),
             ("<answer>none</answer>", "4", 0.0)]
    for resp, gold, want in cases:
        kind, _, score = veripo_item_score(resp, gold, vsi_bench=False)
        assert kind == "numeric" and score == want, (resp, gold)
    if MATH_CHECK != "math_verify":
        assert MATH_CHECK.startswith("fallback") and fallback_math_equal("<answer>2</answer>", "2") == 1.0


def test_which_benchmark_a_row_belongs_to(tmp_path):
    assert get_adapter("veripo_json:vsi_bench").subset == "vsi_bench"
    assert get_adapter("VerIPO-JSON:video-mme").subset == "video_mme"
    assert get_adapter("veripo_json").subset is None            # the registry's instance is never changed
    with pytest.raises(DataError, match="vsi_bench, mmvu"):
        get_adapter("veripo_json:mvbench")
    with pytest.raises(DataError, match="no variants"):
        get_adapter("vsibench:x")
    rows = vsi_rows()
    plain = [{k: v for k, v in r.items() if k != "veripo_subset"} for r in rows]
    preds = write_predictions(tmp_path / "preds.jsonl", plain, VSI_RESPONSES)
    # nothing says vsi_bench: numeric items get the math check, as calculate_score.py without "vsi_bench" in
    # the path: 1: 5 vs 4 -> 0; 2: 2.0 vs 2.5 -> 0; 5: $100$. vs 80 -> 0; 6: 20.4 (whole response) -> 1; 8: 0
    res, items = score_predictions_file(get_adapter("veripo_json"), preds)
    assert res["overall"] == pytest.approx((0 + 0 + 0 + 1 + 0 + 1 + 1 + 0) / 8)
    assert res["groups"]["subset"] == {"unknown": {"score": pytest.approx(3 / 8), "n": 8}}
    assert "math_check" in res and {it.kind for it in items} == {"mc", "numeric"}
    # the variant, or a file name naming the benchmark, gives VerIPO's VSI-Bench scoring
    assert score_predictions_file(get_adapter("veripo_json:vsi_bench"), preds)[0]["overall"] == pytest.approx(STRICT)
    named = write_predictions(tmp_path / "vsi_bench_preds.jsonl", plain, VSI_RESPONSES)
    assert score_predictions_file(get_adapter("veripo_json"), named)[0]["overall"] == pytest.approx(STRICT)


def test_eval_score_cli(tmp_path, capsys):
    preds = write_predictions(tmp_path / "p.jsonl", vsi_rows(), VSI_RESPONSES)   # rows carry veripo_subset
    with open(preds, "a") as fh:
        fh.write(json.dumps({"question_id": "x", "video_path": "v.mp4", "response": "A"}) + "\n")   # no answer
    assert main(["eval", "score", "--benchmark", "veripo_json", "--predictions", str(preds)]) == 0
    out = capsys.readouterr()
    res = json.loads(out.out)
    assert res["overall"] == pytest.approx(STRICT) and res["n_scored"] == 8 and res["n_malformed"] == 1
    assert f"{preds}:9" in out.err and "answer" in out.err
    assert main(["eval", "score", "--benchmark", "veripo_json", "--predictions", str(preds), "--match", "lenient"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"] == pytest.approx(LENIENT)


class ScriptedEngine:
    """A model double: answers each question with the scripted response for its question_id."""

    capabilities = EngineCapabilities(prompt_modes=True)  # reads .reasoning, as the hf engine does

    def __init__(self, responses):
        self.responses, self.reasoning, self.seen = responses, True, []

    def generate(self, samples, n=1, temperature=0.0, max_new_tokens=256):
        self.seen += samples
        return [[Completion(text=self.responses[s.problem_id.split(":", 1)[1]], token_ids=[1, 2, 3], logps=[],
                            finish_reason="stop")] for s in samples]


def test_eval_run_on_videos_then_rescore(tmp_path):
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    for rel in {r["video_path"] for r in vsi_rows()} - {"VSI-Bench/arkitscenes/42446103.mp4"}:
        write_mp4(tmp_path / "data" / rel, frames, fps=4)
    # one video sits directly under --video-dir, without the benchmark's folder
    write_mp4(tmp_path / "data" / "arkitscenes" / "42446103.mp4", frames, fps=4)
    engine = ScriptedEngine({k: v[0] for k, v in VSI_RESPONSES.items()})
    settings = EvalSettings(benchmark="veripo_json", annotations=str(VSI), video_dir=str(tmp_path / "data"),
                            model="double", batch_size=3)
    res = run_eval(settings, engine, tmp_path / "run", judge_fn=None, log=lambda m: None)
    assert res["n_scored"] == 8 and res["counts"]["set_aside"] == 0
    assert res["overall"] == pytest.approx(STRICT)
    assert engine.seen[0].path == str(tmp_path / "data" / "VSI-Bench" / "arkitscenes" / "41069025.mp4")
    assert engine.seen[-1].path == str(tmp_path / "data" / "arkitscenes" / "42446103.mp4")
    preds = [rec for _, rec in read_records(tmp_path / "run" / "predictions.jsonl")]
    assert all(p["veripo_subset"] == "vsi_bench" for p in preds)
    # predictions.jsonl's name says nothing, the rows do: the same score
    records = read_records(tmp_path / "run" / "predictions.jsonl")
    items, errors = score_prediction_rows(get_adapter("veripo_json"), records)
    assert not errors and sum(it.score for it in items) / len(items) == pytest.approx(STRICT)
