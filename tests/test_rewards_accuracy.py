"""Accuracy per problem type, checked against the reference packages where one exists."""
import pytest

from veripo.data.schema import Sample
from veripo.rewards import accuracy_reward, mean_relative_accuracy
from veripo.rewards.accuracy import free_form_accuracy, ocr_accuracy
from veripo.rewards.text_metrics import rouge_l, rouge_n, word_error_rate


def row(ptype, solution, options=None):
    return Sample(problem_id="p", problem="q?", problem_type=ptype, solution=solution, options=options or [],
                  data_type="text")


def wrap(answer):
    return f"<think>reasoning</think><answer>{answer}</answer>"


MC = row("multiple choice", "<answer>B</answer>", ["A. red", "B. green", "C. blue"])


@pytest.mark.parametrize("answer,score", [
    ("B", 1.0), ("(B)", 1.0), ("B. green", 1.0), (" $B$ ", 1.0), ("green", 1.0),
    ("A", 0.0), ("B, C", 0.0), ("C. blue", 0.0), ("", 0.0),
])
def test_multiple_choice(answer, score):
    assert accuracy_reward(wrap(answer), MC) == score


def test_no_answer_block_scores_zero():
    assert accuracy_reward("<think>so the answer is B</think> B", MC) == 0.0


@pytest.mark.parametrize("answer,score", [
    ("3", 1.0), ("3.0", 1.0), ("$3$", 1.0), ("3 objects", 1.0), ("3.001", 1.0), ("3.1", 0.0), ("three", 0.0),
])
def test_numerical(answer, score):
    assert accuracy_reward(wrap(answer), row("numerical", "<answer>3</answer>")) == score


def test_mra_worked_example_and_edges():
    # relative error 0.2 passes theta in {.50,...,.80}: 7 of 10 thresholds
    assert mean_relative_accuracy(12.0, 10.0) == pytest.approx(0.7)
    assert mean_relative_accuracy(10.0, 10.0) == 1.0
    assert mean_relative_accuracy(10.5, 10.0) == pytest.approx(1.0)  # 0.05 <= 1-0.95 (inclusive)
    assert mean_relative_accuracy(30.0, 10.0) == 0.0
    assert mean_relative_accuracy(None, 10.0) == 0.0
    assert mean_relative_accuracy(0.0, 0.0) == 1.0 and mean_relative_accuracy(1.0, 0.0) == 0.0
    assert accuracy_reward(wrap("$12$ meters"), row("regression", "10")) == pytest.approx(0.7)


@pytest.mark.parametrize("ref,hyp", [
    ("the quick brown fox", "the quick brown fox"), ("the quick brown fox", "the quick fox"),
    ("stop sign ahead", "stop sign ahead now please"), ("hello world", "goodbye"), ("a b c d", "d c b a"),
])
def test_wer_matches_jiwer(ref, hyp):
    jiwer = pytest.importorskip("jiwer")
    assert word_error_rate(ref, hyp) == pytest.approx(jiwer.wer(ref, hyp))
    assert ocr_accuracy(hyp, ref) == pytest.approx(max(0.0, 1 - jiwer.wer(ref, hyp)))


@pytest.mark.parametrize("ref,hyp", [
    ("a man is riding a red bicycle", "the man rides a red bicycle down the road"),
    ("two dogs play in the park", "two dogs play in the park"),
    ("The cat sat on the mat.", "mat the on sat cat the"),
    ("completely different", "nothing shared here"),
])
def test_rouge_matches_rouge_score(ref, hyp):
    rs = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rs.RougeScorer(["rouge1", "rouge2", "rougeL"])
    ref_scores = scorer.score(ref, hyp)
    assert rouge_n(ref, hyp, 1) == pytest.approx(ref_scores["rouge1"].fmeasure)
    assert rouge_n(ref, hyp, 2) == pytest.approx(ref_scores["rouge2"].fmeasure)
    assert rouge_l(ref, hyp) == pytest.approx(ref_scores["rougeL"].fmeasure)
    mean = sum(s.fmeasure for s in ref_scores.values()) / 3
    assert free_form_accuracy(hyp, ref) == pytest.approx(mean)


def test_ocr_and_free_form_through_accuracy_reward():
    assert accuracy_reward(wrap("STOP"), row("OCR", "STOP")) == 1.0
    assert accuracy_reward(wrap("STOP HERE"), row("OCR", "STOP")) == 0.0  # WER 1 -> clipped 0
    assert 0.0 < accuracy_reward(wrap("a red car"), row("free-form", "a red car parked")) < 1.0


def test_unknown_problem_type_is_inferred():
    assert accuracy_reward(wrap("4"), row("", "4")) == 1.0
    assert accuracy_reward(wrap("B"), row("", "B", ["A. x", "B. y"])) == 1.0
