"""Per-rollout checks on crafted rollouts: format, length, repetition, accuracy, rule-judge consistency,
and the judge-reply parser."""
import pytest

from veripo.data.schema import Sample
from veripo.records import RolloutRecord
from veripo.verifier.checks import check_rollout
from veripo.verifier.config import VerifierConfig
from veripo.verifier.judges import JudgeInput, RuleJudge, parse_verdict, stated_conclusion
from veripo.verifier.pipeline import Verifier
from veripo.verifier.repetition import clean_repetition, repetition_check

MC = Sample.from_dict({"problem_id": "q1", "problem": "What colour is the ball?", "problem_type": "multiple choice",
                      "options": ["A. red", "B. green", "C. blue"], "solution": "<answer>B</answer>",
                      "data_type": "text"})
NUM = Sample.from_dict({"problem_id": "q2", "problem": "How many cubes?", "problem_type": "numerical", "solution": "3",
                       "data_type": "text"})


def rollout(response, sample=MC, i=0, finish="stop"):
    return RolloutRecord(rollout_id=f"r{i}", step=0, group_id="g", sample=sample, prompt="p", response=response,
                         finish_reason=finish)


def verdict(response, sample=MC, **kw):
    return Verifier(VerifierConfig()).verify([rollout(response, sample, **kw)])[0]


def test_consistent_good_rollout():
    v = verdict("<think> The ball is green all along, so the answer is B. </think><answer> $B$ </answer>")
    assert (v.format_ok, v.correct, v.repetitive, v.consistency, v.good) == (True, True, False, "consistent", True)
    assert v.think_tokens == 11 and v.answer == "B" and v.judge == "rule" and v.reasons == []


def test_correct_but_inconsistent_is_caught_via_option_text():
    v = verdict("<think> It looks bluish, so the colour is blue. </think><answer>B</answer>")
    assert v.correct and v.consistency == "inconsistent" and not v.good
    assert v.reasons == ["inconsistent"] and "concludes C" in v.judge_detail


def test_repetitive_rollout():
    v = verdict("<think> " + "I see a ball on the table. " * 4 + "So the answer is B. </think><answer>B</answer>")
    assert v.repetitive and v.repetition_score > 0.3 and v.reasons == ["repetitive"]


def test_malformed_rollout():
    v = verdict("The ball is green. B", finish="length")
    assert not v.format_ok and v.answer is None and v.accuracy == 0.0
    assert v.consistency == "unknown" and set(v.reasons) == {"bad_format", "wrong_answer", "truncated"}


def test_numeric_consistency():
    assert verdict("<think> one, two, three cubes, so the answer is $3$. </think><answer>3</answer>",
                   NUM).consistency == "consistent"
    v = verdict("<think> I count 3 cubes, so the answer is 3.5. </think><answer>4</answer>", NUM)
    assert v.consistency == "inconsistent" and not v.correct


@pytest.mark.parametrize("think,conclusion", [
    ("blah. So the answer is B.", "B"),
    ("It is round. Therefore the shape is a circle. ", "a circle"),
    ("first answer is A, but wait, the correct answer is C", "C"),
    ("the distance is 2.5 meters, so the answer is 2.5.", "2.5"),
    ("hmm, so B.", "B"),
    ("I have no idea", None),
])
def test_stated_conclusion(think, conclusion):
    assert stated_conclusion(think) == conclusion


def test_rule_judge_unknown_when_nothing_to_compare():
    judge = RuleJudge()
    base = dict(question="q", options=["A. red", "B. green"], problem_type="multiple choice")
    assert judge.judge_one(JudgeInput(think="it moves", answer="B", **base)).verdict == "unknown"
    assert judge.judge_one(JudgeInput(think="so the answer is B", answer="", **base)).verdict == "unknown"
    free = JudgeInput(question="q", think="so the man is sitting on a chair", answer="The man is running",
                      options=[], problem_type="free-form")
    assert judge.judge_one(free).verdict == "unknown"


@pytest.mark.parametrize("reply,label", [
    ('{"verdict": "CONSISTENT"}', "consistent"),
    ('Sure! {"verdict": "inconsistent"} hope that helps', "inconsistent"),
    ("CONSISTENT", "consistent"), ("The answer is INCONSISTENT.", "inconsistent"),
    ("not consistent", "inconsistent"), ("consistent or INCONSISTENT", None),
    ("<|endoftext|> blue ball 42", None), ("", None), (None, None), ('{"verdict": 3}', None),
])
def test_parse_verdict(reply, label):
    assert parse_verdict(reply) == label


def test_repetition_rule_and_cleaning():
    clean_text = "The ball rolls left. Then it hits a cube and stops. So the answer is B."
    assert not repetition_check(clean_text).repetitive
    loop = "the ball moves left " * 5 + "then stops"
    r = repetition_check(loop)
    assert r.repetitive and r.ngram_ratio > 0.5
    assert clean_repetition(loop) == "the ball moves left then stops"
    sent = "I see a ball. I see a ball. I see a ball. So B."
    assert repetition_check(sent).max_sentence_repeats == 3 and repetition_check(sent).repetitive
    assert clean_repetition(sent) == "I see a ball. So B."
    assert not repetition_check(clean_repetition(sent)).repetitive
    assert repetition_check("").score == 0.0


def test_check_rollout_without_judge_is_unjudged_until_judged():
    v = check_rollout(rollout("<think>x so B</think><answer>B</answer>"), VerifierConfig())
    assert v.consistency == "unjudged" and v.content_hash


def test_verdict_to_dict_is_asdict_with_its_own_reasons_list():
    import dataclasses

    from veripo.verifier.examples import example_rollouts

    verdicts = Verifier().verify(example_rollouts())
    assert any(v.reasons for v in verdicts)
    for v in verdicts:
        d = v.to_dict()
        assert d == dataclasses.asdict(v) and list(d) == list(dataclasses.asdict(v))
        d["reasons"].append("x")
        assert "x" not in v.reasons  # a copy, as asdict gives
