"""Templated responses: the correct ones answer the solution; the flawed ones are flawed as labelled.

The reasoning's conclusion is parsed here with regexes written independently of the templates, so a
template that concludes something else than its answer cannot pass; and the verifier's rule judge (what the
loop's verify stage and the held-out inconsistency rate use) must read the same conclusion.
"""
import random
import re

import pytest

from veripo.data.schema import Sample
from veripo.data.synthetic import TASKS, SynthSpec, build_rows
from veripo.data.templates import (inconsistent_response, make_response, option_values, reflective_response,
                                   repetitive_response, wrong_response)
from veripo.prompts import question_text
from veripo.verifier.judges import JudgeInput, RuleJudge

RESPONSE_RE = re.compile(r"^<think>(.+)</think><answer>(.+)</answer>$", re.S)
CONCLUSION_RE = {
    "color": r"so the colour is (\w+)\.$",
    "direction": r"so the direction is (\w+)\.$",
    "order": r"so the first colour is (\w+)\.$",
    "count": r"so the count is (\d+)\.$",
    "size": r"so its side is (\d+) pixels\.$",
    "distance": r"so the distance is (\d+) pixels\.$",
}


def rows():
    spec = SynthSpec(types=TASKS, n_train=48, n_val=0, n_test=0, seed=11, shuffle_options=True,
                     flawed_inconsistent=0.2, flawed_repetitive=0.2, flawed_wrong=0.2, flawed_reflective=0.2)
    return [Sample.from_dict(r) for r in build_rows(spec, "train")]


def synthetic(task, meta, options):
    return Sample(problem_id="x", problem="q", problem_type="multiple choice", solution="C", options=options,
                  extra={"task": task, "meta": meta})


def parse(row, response):
    """(answer the reasoning concludes, answer given)."""
    m = RESPONSE_RE.match(response)
    assert m, f"not <think>..</think><answer>..</answer>: {response!r}"
    reasoning, given = m.groups()
    c = re.search(CONCLUSION_RE[row.extra["task"]], reasoning)
    if c is None:
        return None, given
    value = c.group(1)
    if row.problem_type == "multiple choice":
        concluded = {text: letter for letter, text in option_values(row.options)}[value]
    else:
        concluded = value
    return concluded, given


def rule_verdict(row, response):
    reasoning, given = RESPONSE_RE.match(response).groups()
    item = JudgeInput(question=question_text(row), think=reasoning, answer=given, options=row.options,
                      problem_type=row.problem_type)
    return RuleJudge().judge_one(item).verdict


def truth(row):
    return re.fullmatch(r"<answer>(.+)</answer>", row.solution).group(1)


@pytest.fixture(scope="module")
def all_rows():
    r = rows()
    assert {x.extra["task"] for x in r} == set(TASKS)
    assert {x.extra["response_kind"] for x in r} == {"correct", "inconsistent", "repetitive", "wrong", "reflective"}
    return r


def test_correct_responses_conclude_and_answer_the_solution(all_rows):
    for row in all_rows:
        response = make_response(row, "correct", random.Random(0))
        assert parse(row, response) == (truth(row), truth(row)), response
        assert len(response.split()) <= 25  # concise: the tiny model generates ~40 tokens
        assert rule_verdict(row, response) == "consistent", response
        assert response.startswith("<think>First ") or row.extra["task"] in ("count", "size"), response


def test_the_reasoning_says_what_the_frames_show_in_order():
    row = synthetic("direction", {"direction": "up"}, ["A. left", "B. right", "C. up", "D. down"])
    assert make_response(row, "correct", random.Random(0)) == (
        "<think>First the square is at the bottom, then it is at the top, so the direction is up.</think>"
        "<answer>C</answer>")
    row = synthetic("order", {"first": "blue", "second": "red"}, ["A. red", "B. green", "C. blue"])
    assert make_response(row, "correct", random.Random(0)) == (
        "<think>First the blue square flashes, then the red square flashes, so the first colour is blue.</think>"
        "<answer>C</answer>")


def test_reflective_responses_correct_a_wrong_reasoning_and_answer_the_truth(all_rows):
    for row in all_rows:
        response = reflective_response(row, random.Random(2))
        reasoning, given = RESPONSE_RE.match(response).groups()
        wrong, right = reasoning.split(" Wait, ")
        assert parse(row, f"<think>{wrong}</think><answer>{given}</answer>")[0] != truth(row)
        assert parse(row, response) == (truth(row), truth(row))
        assert rule_verdict(row, response) == "consistent"  # the last conclusion counts


def test_inconsistent_responses_conclude_one_thing_and_answer_another(all_rows):
    for row in all_rows:
        for seed in range(4):
            response = inconsistent_response(row, random.Random(seed))
            concluded, given = parse(row, response)
            assert concluded != given
            assert truth(row) in (concluded, given)
            assert rule_verdict(row, response) == "inconsistent", response


def test_wrong_responses_are_consistent_and_wrong(all_rows):
    for row in all_rows:
        for seed in range(4):
            concluded, given = parse(row, wrong_response(row, random.Random(seed)))
            assert concluded == given != truth(row)
            if row.problem_type == "regression":
                assert abs(int(given) - int(truth(row))) >= 2


def test_repetitive_responses_loop_one_sentence(all_rows):
    for row in all_rows:
        response = repetitive_response(row, random.Random(1))
        reasoning, given = RESPONSE_RE.match(response).groups()
        sentences = [x for x in re.split(r"(?<=\.)\s+", reasoning) if x]
        assert 3 <= len(sentences) <= 4 and len(set(sentences)) == 1, reasoning
        assert given == truth(row)


def test_rows_carry_the_response_their_kind_says(all_rows):
    for row in all_rows:
        concluded, given = parse(row, row.response)
        kind = row.extra["response_kind"]
        if kind == "correct":
            assert concluded == given == truth(row)
        elif kind == "inconsistent":
            assert concluded != given
        elif kind == "wrong":
            assert concluded == given != truth(row)
        elif kind == "reflective":
            assert concluded == given == truth(row) and " Wait, " in row.response
        else:
            assert concluded is None and given == truth(row)


def test_flawed_responses_are_deterministic_for_an_rng_seed(all_rows):
    row = all_rows[0]
    for kind in ("inconsistent", "repetitive", "wrong", "reflective"):
        assert make_response(row, kind, random.Random(7)) == make_response(row, kind, random.Random(7))


def test_unknown_kind_and_non_synthetic_rows_are_refused(all_rows):
    with pytest.raises(ValueError, match="unknown response kind"):
        make_response(all_rows[0], "sarcastic", random.Random(0))
    with pytest.raises(ValueError, match="not a synthetic row"):
        make_response(Sample(problem_id="x", problem="q", problem_type="free-form", solution="a"), "correct",
                      random.Random(0))
