"""``--match official`` (lmms-eval 0.7.3's scorers) on hand-computed numbers; no lmms-eval needed.

The same rules are checked against lmms-eval's own code in tests/test_eval_lmms_parity.py (when installed).
"""
import json
from pathlib import Path

import pytest

from veripo.cli import main
from veripo.errors import DataError
from veripo.eval import lmms_rules as R
from veripo.eval import lmms_rules_open as O
from veripo.eval.benchmarks import get_adapter
from veripo.eval.predictions import score_predictions_file
from veripo.eval.scoring import mra

FIX = Path(__file__).parent / "fixtures" / "eval"


def official(name, pairs):
    a = get_adapter(name)
    items = [a.score_row(row, resp, "official") for row, resp in pairs]
    return a.aggregate(items, "official"), items


# ---------------------------------------------------------------- VSI-Bench MRA at the thresholds

def test_mra_floating_point_thresholds_not_rounded():
    # 1 - np.linspace(.5, .95, 10) = [.5, .44999999999999996, .4, .35, .30000000000000004, .25,
    #                                  .19999999999999996, .15000000000000002, .10000000000000009, .05...]
    assert R.vsi_mra(12.0, 10.0) == pytest.approx(0.6)  # rel .2 fails 1-.8 = .19999999999999996
    assert mra(12.0, 10.0) == pytest.approx(0.7)  # veripo's rounded thresholds pass it
    assert R.vsi_mra(14.5, 10.0) == pytest.approx(0.1)  # rel .45 fails .44999999999999996
    assert mra(14.5, 10.0) == pytest.approx(0.2)
    assert R.vsi_mra(5.0, 4.0) == pytest.approx(0.6)  # rel .25 passes .25 exactly
    assert R.vsi_mra(1.8, 2.0) == pytest.approx(0.9)  # rel .09999999999999998 passes .10000000000000009
    assert R.vsi_mra(None, 4.0) == 0.0 and R.vsi_mra(3.0, None) == 0.0
    with pytest.raises(ValueError, match="divides"):
        R.vsi_mra(1.0, 0.0)


def test_vsi_number_words_and_first_token_letters():
    assert R.vsi_number("about 2 meters") == 2.0
    assert R.vsi_number("twenty-one chairs") == 21.0
    assert R.vsi_number("one hundred and five") == 105.0
    assert R.vsi_number("one apple, room 2") == 1.0
    assert R.vsi_number("none") is None and R.vsi_number("") is None
    assert R.vsi_choice_correct("c. back-left", "C") == 1.0
    assert R.vsi_choice_correct("$C$", "C") == 0.0
    assert R.vsi_choice_correct("The answer is C", "C") == 0.0


def test_vsibench_fixture_official_through_the_cli(capsys):
    # reduced answers: counting 5 vs 4 -> .6; "about 2 meters" vs 2.5 -> 2.0, rel .2 -> .6; "$A$" -> 0;
    # "C. back-left" -> "C" -> 1; route "A" vs B -> 0; room 20 -> 1; "d" -> 1; "$100$." vs 80 -> 100 -> .6.
    # rel_direction = mean(easy 0, hard 1) = .5; 7 task types; each rounded to 6 decimals.
    preds = FIX / "vsibench" / "predictions.jsonl"
    assert main(["eval", "score", "--benchmark", "vsibench", "--predictions", str(preds), "--match", "official"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["match"] == "official" and "lmms-eval 0.7.3" in res["scorer"]
    assert res["overall"] == round((0.6 + 0.6 + 0.5 + 0 + 1 + 1 + 0.6) / 7, 6)
    assert res["tasks"]["object_abs_distance"] == {"score": 0.6, "n": 1}
    assert res["tasks"]["object_rel_direction"] == {"score": 0.5, "n": 2}
    assert set(res["overall_by_match"]) == {"strict", "lenient", "official"}
    assert res["n_malformed"] == 2


# ---------------------------------------------------------------- letters: lowercase, several, option text

def test_mcq_extract_rules():
    assert R.mcq_letter("B") == "B"
    assert R.mcq_letter("b") == ""  # upper-case letters only
    assert R.mcq_letter("The answer is B.") == "B"
    assert R.mcq_letter("A or C") == "A"  # "starts with A" (10) beats "ends with C" (9)
    assert R.mcq_letter("maybe A, or C") == "C"  # "ends with C" (9); "A," is no format
    assert R.mcq_letter("(A) is wrong, so B") == "B"
    assert R.mcq_letter("I think (A) fits but (C) too because") == "C"  # both "(X)": the later wins
    assert R.mcq_letter("red car") == ""
    assert R.mcq_letter("") == "" and R.mcq_letter("   ") == ""


def test_reasoning_reduction():
    assert R.reduce_reasoning("<think>A?</think> <answer> C </answer>") == "C"
    assert R.reduce_reasoning("<think>x</think>so \\boxed{ B } it is") == "B"
    assert R.reduce_reasoning("<think>only thinking</think>") == ""
    assert R.reduce_reasoning("<think>unclosed B") == "<think>unclosed B"


def test_tomato_parser_quirks():
    opts = ["up", "down", "left", "right"]
    assert R.tomato_letter("", opts) == "A"  # nothing found -> "A"
    assert R.tomato_letter("b", opts) == "A"
    assert R.tomato_letter("C and D", opts) == "C"  # no "(X)": the first candidate
    assert R.tomato_letter("C, or maybe (D)", opts) == "D"
    assert R.tomato_letter("the object is clearly moving down the slope", opts) == "B"  # option text, > 5 words


def test_mvbench_and_mmvu_rules():
    assert R.mvbench_correct("B", "b") and R.mvbench_correct("A", "A cat") and R.mvbench_correct("C", "c. tidy up")
    assert not R.mvbench_correct("B", "")
    choices = {"A": "Impasto", "B": "Glazing", "C": "Scumbling", "D": "Sgraffito"}
    assert R.mmvu_mc_correct("This is a cat", "A", choices)  # the article "a" reads as A
    assert R.mmvu_mc_correct("glazing, I think", "B", choices)  # option text
    assert not R.mmvu_mc_correct("C", "B", choices)


# ---------------------------------------------------------------- denominators and rounding

def _mv_row(answer, task="action_sequence"):
    return {"task": task, "video": "x.mp4", "question": "Q?", "candidates": ["up", "down"], "answer": answer}


def test_mvbench_empty_answers_leave_the_denominator():
    res, _ = official("mvbench", [(_mv_row("up"), "A"), (_mv_row("up"), "B"), (_mv_row("up"), ""),
                                  (_mv_row("up"), "<think>no answer</think>"), (_mv_row("down", "moving_count"), "b")])
    assert res["tasks"]["action_sequence"] == {"score": 0.5, "n": 2}
    assert res["tasks"]["moving_count"] == {"score": 1.0, "n": 1}
    assert res["overall"] == pytest.approx(0.75)  # mean of the task scores
    assert res["overall_by_match"]["strict"] == pytest.approx((1 / 4 + 1) / 2)


def test_videommmu_api_error_left_out_and_five_decimals():
    def row(i, qtype, answer, options=()):
        return {"id": f"perception_Art_{i}", "track": "Perception", "question": "Q?", "question_type": qtype,
                "answer": answer, "options": list(options)}

    mc = ["A. red", "B. blue", "C. green"]
    res, items = official("videommmu", [(row(1, "multiple-choice", "B", mc), "B"),
                                        (row(2, "multiple-choice", "B", mc), ""),  # "No Answer Found.": counted
                                        (row(3, "multiple-choice", "A", mc), "(C)"),
                                        (row(4, "open", "36"), ""),  # "API Error": left out
                                        (row(5, "open", "36"), "so the total is 36.0")])
    assert [it.counted for it in items] == [True, True, True, False, True]
    assert res["overall"] == round(2 / 4, 5)
    assert res["groups"]["subject"]["Art"] == {"score": 0.5, "n": 4}
    assert res["groups"]["domain"]["Art and Design"] == {"score": 0.5, "n": 4}
    res, _ = official("videommmu", [(row(i, "multiple-choice", "A", mc), "A" if i == 0 else "B") for i in range(3)])
    assert res["overall"] == 0.33333 and res["tasks"]["Perception"]["score"] == 0.33333


def test_videomme_breakdowns_and_unlisted_category_is_malformed(tmp_path):
    base = {"videoID": "v", "question": "Q?", "options": ["A. 1", "B. 2", "C. 3", "D. 4"], "answer": "C",
            "duration": "short", "domain": "Knowledge", "sub_category": "Law", "task_type": "Counting Problem"}
    rows = [dict(base, question_id="1", response="<answer>C</answer>"),
            dict(base, question_id="2", response="c"),  # lower case: no letter in lmms-eval 0.7.3
            dict(base, question_id="3", duration="long", response="It is C or D"),  # ends with D
            dict(base, question_id="4", domain="Cooking", response="C")]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res, _ = score_predictions_file(get_adapter("videomme"), preds, "official")
    assert res["overall"] == pytest.approx(1 / 3)
    assert res["groups"]["duration"] == {"short": {"score": 0.5, "n": 2}, "long": {"score": 0.0, "n": 1}}
    assert res["tasks"] == {"Counting Problem": {"score": pytest.approx(1 / 3), "n": 3}}
    assert res["n_malformed"] == 1 and res["malformed"][0].startswith(f"{preds}:4: domain 'Cooking'")


def test_mmvu_denominator_is_the_listed_subjects():
    def row(i, subject):
        return {"id": i, "question": "Q?", "choices": {"A": "x", "B": "y"}, "answer": "A",
                "question_type": "multiple-choice", "video_path": f"https://h/videos/{subject}/{i}.mp4"}

    res, _ = official("mmvu", [(row(1, "Art"), "A"), (row(2, "Chemistry"), "B"), (row(3, "Cooking"), "A")])
    assert res["overall"] == 0.5 and res["n_counted"] == 2
    assert res["groups"]["category"] == {"Humanities_and_Social_Science": {"score": 1.0, "n": 1},
                                         "Science": {"score": 0.0, "n": 1}}


# ---------------------------------------------------------------- TempCompass: three formats

def test_tempcompass_rules_per_format():
    assert O.tempcompass_multi_choice("B", "B. right") == 1
    assert O.tempcompass_multi_choice("B. left", "B. right") == 1  # the letter decides
    assert O.tempcompass_multi_choice("right", "B. right") is None  # -> lmms-eval's judge
    assert O.tempcompass_yes_no("Yes, it is.", "yes") == 1
    assert O.tempcompass_yes_no("Not sure", "yes") == 0  # "not" starts with "no"
    assert O.tempcompass_yes_no("Maybe", "yes") is None
    q = "Which caption matches the video better?\nCaption A: The man runs.\nCaption B: The man sits."
    assert O.tempcompass_caption_matching("Caption A", q, "Caption A: The man runs.") == 1
    assert O.tempcompass_caption_matching("A.", q, "Caption A: The man runs.") == 1
    assert O.tempcompass_caption_matching("The man sits.", q, "Caption A: The man runs.") == 0
    assert O.tempcompass_caption_matching("the first one", q, "Caption A: The man runs.") is None
    q2 = "Which description is a more suitable match?\nOption 1: fast.\nOption 2: slow."
    assert O.tempcompass_caption_matching("Option 2", q2, "Option 2: slow.") == 1
    with pytest.raises(ValueError, match="eval_rule"):
        O.tempcompass_caption_matching("A", "Which?\nno labels here", "A: x")


def _tempcompass_release(tmp_path):
    q = tmp_path / "questions"
    q.mkdir()
    (q / "yes_no.json").write_text(json.dumps({"v1": {"speed": [{"question": "Is it fast?", "answer": "yes"},
                                                                {"question": "Is it slow?", "answer": "no"}]}}))
    (q / "caption_matching.json").write_text(json.dumps({"v1": {"direction": [
        {"question": "Which caption matches the video better?\nCaption A: left.\nCaption B: right.",
         "answer": "Caption B: right."},
        {"question": "Which description is a more suitable match for the video?\nOption 1: up.\nOption 2: down.",
         "answer": "Option 1: up."}]}}))
    (q / "multi-choice.json").write_text(json.dumps({"v1": {"direction": [
        {"question": "Which way?\nA. left\nB. right", "answer": "B. right"}]}}))
    return q


def test_tempcompass_reads_and_scores_all_three_formats(tmp_path):
    q = _tempcompass_release(tmp_path)
    a = get_adapter("tempcompass")
    errors = []
    rows = [r for _, r in a.read_rows(q, errors)]
    assert not errors and sorted(r["task_type"] for r in rows) == ["caption_matching", "caption_matching",
                                                                    "multi-choice", "yes_no", "yes_no"]
    replies = {"Is it fast?": "Yes", "Is it slow?": "I cannot tell", "Which way?\nA. left\nB. right": "B"}
    pairs = [(r, replies.get(r["question"], "Caption B" if "Caption" in r["question"] else "up."))
             for r in rows]
    strict = a.aggregate([a.score_row(r, resp, "strict") for r, resp in pairs], "strict")
    assert strict["n_scored"] == 5  # no row rejected as malformed
    sample = a.to_sample(next(r for r in rows if r["task_type"] == "caption_matching"
                              and "Option 1" in r["question"]))
    assert sample.options == ["A. up.", "B. down."] and sample.solution == "A"
    res, items = official("tempcompass", pairs)
    # yes_no: "Yes" -> 1, "I cannot tell" -> judge -> 0; caption: "Caption B" -> 1, "up." -> "up" matches
    # "Option 1"'s sentence? no: "up." equals the sentence "up." -> 1; multi-choice "B" -> 1
    assert res["groups"]["task_type"] == {"caption_matching": {"score": 1.0, "n": 2},
                                          "multi-choice": {"score": 1.0, "n": 1}, "yes_no": {"score": 0.5, "n": 2}}
    assert res["overall"] == pytest.approx(4 / 5) and res["n_judge_items"] == 1
    assert res["tasks"]["speed"] == {"score": 0.5, "n": 2}


def test_tempcompass_official_judge_scores_the_rule_failures(tmp_path):
    from types import SimpleNamespace

    from veripo.eval.official_judge import score_with_official_judge

    rows = [{"video_id": "v", "dim": "speed", "task_type": "yes_no", "question": f"Q{i}?", "answer": "yes",
             "response": resp} for i, resp in enumerate(["yes", "maybe so", "hard to say", "probably"])]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))

    class Judge:
        name = "fake"

        def judge_many(self, inputs):
            verdict = {"maybe so": "correct", "hard to say": "incorrect", "probably": "unjudged"}
            return [SimpleNamespace(verdict=verdict[x.answer], judge="fake", detail="") for x in inputs]

    res, _ = score_with_official_judge(get_adapter("tempcompass"), preds, Judge())
    assert res["overall"] == 0.5  # yes (rule) + maybe so (judge); hard to say 0; unjudged 0 as lmms-eval
    assert res["official_judge"]["n"] == 3 and res["official_judge"]["n_unjudged"] == 1
    no_judge, _ = score_predictions_file(get_adapter("tempcompass"), preds, "official")
    assert no_judge["overall"] == 0.25


# ---------------------------------------------------------------- modes, listing, report

def test_official_refused_where_lmms_eval_has_no_scorer(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text("{}\n")
    with pytest.raises(DataError, match="no lmms-eval 0.7.3 scorer"):
        score_predictions_file(get_adapter("veripo_json:vsi_bench"), preds, "official")


def test_list_names_the_official_scorer_and_version(capsys):
    assert main(["eval", "list"]) == 0
    text = capsys.readouterr().out
    assert text.count("scorer (official): lmms-eval 0.7.3 lmms_eval/tasks/") == 8
    assert "src/get_categorized_score.py" in text


def test_report_rescores_under_official(tmp_path):
    run = tmp_path / "iter0"
    run.mkdir()
    preds = FIX / "vsibench" / "predictions.jsonl"
    (run / "predictions.jsonl").write_text(preds.read_text())
    strict, _ = score_predictions_file(get_adapter("vsibench"), preds, "strict")
    (run / "results.json").write_text(json.dumps(strict))
    assert main(["eval", "report", "--results", str(run), "--out", str(tmp_path / "rep"), "--match", "official"]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["iter0"]["vsibench"]["overall"] == round(4.3 / 7, 6)
    assert "match: official" in (tmp_path / "rep" / "report.md").read_text()


def test_run_official_records_the_mode_and_judges_tempcompass(tmp_path):
    from types import SimpleNamespace

    from veripo.eval.runner import EvalSettings, run_eval

    q = _tempcompass_release(tmp_path)
    (tmp_path / "v1.mp4").write_bytes(b"x")

    class Engine:
        reasoning = True

        def generate(self, samples, n=1, temperature=0.0, max_new_tokens=256):
            return [[SimpleNamespace(text="<think>hm</think><answer>unsure</answer>", token_ids=[1])] for _ in samples]

    class Judge:
        name = "fake"

        def judge_many(self, inputs):
            return [SimpleNamespace(verdict="correct") for _ in inputs]

    s = EvalSettings(benchmark="tempcompass", annotations=str(q), video_dir=str(tmp_path), match="official")
    res = run_eval(s, Engine(), tmp_path / "out", judge_fn=None, log=lambda m: None, answer_judge=Judge())
    assert res["match"] == "official" and res["n_scored"] == 5
    assert res["official_judge"]["n"] == 5 and res["overall"] == 1.0  # no rule reads "unsure": all judged
    assert json.loads((tmp_path / "out" / "results.json").read_text())["match"] == "official"
    with pytest.raises(DataError, match="no lmms-eval"):
        run_eval(EvalSettings(benchmark="synthetic", annotations=str(q), match="official"), Engine(),
                 tmp_path / "out2", judge_fn=None, log=lambda m: None)


def test_row_the_official_rule_cannot_read_is_malformed_by_line(tmp_path):
    row = {"id": "perception_Art_1", "track": "Perception", "question": "Q?", "answer": "A",
           "question_type": "multiple-choice", "options": ["A. x", "B. y"], "response": "A"}
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps(row) + "\n" + json.dumps(dict(row, id="no-subject-here")) + "\n")
    res, _ = score_predictions_file(get_adapter("videommmu"), preds, "official")
    assert res["n_scored"] == 1 and res["n_malformed"] == 1
    assert res["malformed"][0].startswith(f"{preds}:2: id 'no-subject-here'")
