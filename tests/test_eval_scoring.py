"""Scoring rules of the eval harness against hand-computed values."""
import pytest

from veripo.eval.benchmarks import get_adapter
from veripo.eval.scoring import (ItemScore, answer_span, mra, mra_video_r1, score_mra,
                                 score_multiple_choice, score_numeric_exact, score_open, strict_number,
                                 veripo_letter_correct)

OPTS = ["A. red", "B. green", "C. blue", "D. yellow"]


@pytest.mark.parametrize("response, strict, lenient", [
    ("B", 1, 1),
    ("(B)", 1, 1),
    ("The answer is B.", 0, 1),              # strict: 't','h','e','a' are other letters a-j
    ("<think>x</think><answer> $B$ </answer>", 1, 1),
    ("<answer>b</answer>", 1, 1),            # lowercase
    ("<answer>green</answer>", 0, 1),        # option text only
    ("<answer>B and C</answer>", 0, 0),      # multiple letters
    ("<answer>B. green</answer>", 0, 1),     # VerIPO's rule fails on the option text's letters
    ("<answer>C</answer>", 0, 0),            # wrong letter
    ("<think>A or B? B.</think><answer>B</answer>", 1, 1),  # letters in the think part do not count
    ("<think>no tags closed", 0, 0),
])
def test_letter_strict_vs_lenient(response, strict, lenient):
    _, s, l = score_multiple_choice(response, "B", OPTS)
    assert (s, l) == (strict, lenient)


def test_veripo_rule_letters_a_to_j_only():
    assert veripo_letter_correct("$B$", "B")
    assert not veripo_letter_correct("B.", "C")
    assert veripo_letter_correct("B zz", "B")    # z is outside a-j, as in VerIPO's calculate_score.py
    assert answer_span("<answer>x</answer><answer>y</answer>") == "x"  # first block, like re.search


def test_mra_hand_values():
    # rel. error 0.25 passes theta in {.50,.55,.60,.65,.70,.75} -> 6/10 (boundary included: "<=")
    assert mra(5, 4) == pytest.approx(0.6)
    assert mra(12, 10) == pytest.approx(0.7)    # rel 0.2 -> .50..80 -> 7/10
    assert mra(10, 10) == 1.0
    assert mra(25, 10) == 0.0
    assert mra(None, 10) == 0.0
    # Video-R1's eval_bench.py: strict "<" but |y| + 1e-8 in the denominator, so an exact boundary still passes
    assert mra_video_r1(5, 4) == pytest.approx(0.6)
    assert mra_video_r1(13, 10) == pytest.approx(0.5)    # rel 0.3 -> theta .50..70 pass -> 5/10



def test_numeric_parsing_strict_vs_lenient():
    assert strict_number("3.5 meters") == 3.5
    assert strict_number("$100$.") == 100.0
    assert strict_number("about 3") is None
    pred, s, l = score_mra("<answer>about 2 meters</answer>", 2.5)
    assert (s, l) == (0.0, pytest.approx(0.7)) and pred == "2.0"
    assert score_numeric_exact("<answer>3</answer>", "3")[1:] == (1.0, 1.0)
    assert score_numeric_exact("<answer>3.004</answer>", "3")[1:] == (1.0, 1.0)   # equal at 2 decimals
    assert score_numeric_exact("<answer>4</answer>", "3")[1:] == (0.0, 0.0)


def test_open_answers():
    assert score_open("<answer>36</answer>", "36")[1:] == (1.0, 1.0)
    assert score_open("<answer>The result is 36</answer>", "36")[1:] == (0.0, 1.0)
    assert score_open("<answer>Impasto.</answer>", "impasto")[1:] == (1.0, 1.0)
    assert score_open("<answer>glazing</answer>", "impasto")[1:] == (0.0, 0.0)


def _item(task, score, kind="mc", tasks=()):
    return ItemScore(item_id=f"{task}{score}", task=task, kind=kind, gold="", pred=None, score=score,
                     score_strict=score, score_lenient=score, tasks=tasks)


def test_vsibench_overall_is_mean_of_merged_task_types():
    a = get_adapter("vsibench")
    items = [_item("object_rel_direction_easy", 1), _item("object_rel_direction_easy", 1),
             _item("object_rel_direction_medium", 0), _item("object_rel_direction_hard", 0.0),
             _item("object_counting", 0.6, "mra"), _item("route_planning", 1), _item("route_planning", 0)]
    res = a.aggregate(items)
    # rel_direction = mean(1, 0, 0) = 1/3; tasks: 1/3, counting .6, route .5 -> mean = (1/3 + .6 + .5)/3
    assert res["task_scores_official"]["object_rel_direction"] == pytest.approx(1 / 3)
    assert res["overall"] == pytest.approx((1 / 3 + 0.6 + 0.5) / 3)
    assert res["overall_micro"] == pytest.approx((1 + 1 + 0 + 0 + 0.6 + 1 + 0) / 7)


def test_mvbench_macro_and_lvbench_multilabel():
    mv = get_adapter("mvbench").aggregate([_item("a", 1), _item("a", 1), _item("a", 1), _item("b", 0)])
    assert mv["overall"] == pytest.approx(0.5)          # mean of task means (1, 0), not 3/4
    lv = get_adapter("lvbench").aggregate([_item("x", 1, tasks=("reasoning", "event understanding")),
                                           _item("y", 0, tasks=("reasoning",))])
    assert lv["overall"] == pytest.approx(0.5)
    assert lv["tasks"]["reasoning"] == {"score": 0.5, "n": 2}
    assert lv["tasks"]["event understanding"] == {"score": 1.0, "n": 1}


def test_videor1_overall_averages_acc_and_mra():
    res = get_adapter("videor1").aggregate([_item("multiple choice", 1), _item("multiple choice", 0),
                                            _item("regression", 0.2, "mra")])
    assert res["overall"] == pytest.approx((0.5 + 0.2) / 2)
