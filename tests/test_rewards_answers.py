"""Answer extraction: the last <answer> block, LaTeX wrappers, numbers, option letters."""
import pytest

from veripo.rewards import choice_letter, extract_answer, extract_think, option_map, parse_number, strip_latex

OPTIONS = ["A. red", "B. green", "C. blue", "D. yellow"]


def test_extract_answer_takes_last_block_and_strips_latex():
    text = "<think>maybe <answer>A</answer>?</think><answer> $B$ </answer>"
    assert extract_answer(text) == "B"
    assert extract_answer("<think>x</think>") is None
    assert extract_answer("") is None
    assert extract_answer("<answer>\\boxed{3.5}</answer>") == "3.5"
    assert extract_answer("<ANSWER>  \\( 7 \\) </ANSWER>") == "7"


def test_extract_think():
    assert extract_think("<think> the ball is red </think><answer>A</answer>") == "the ball is red"
    assert extract_think("<answer>A</answer>") is None


@pytest.mark.parametrize("text,expected", [
    ("$B$", "B"), ("$\\boxed{B}$", "B"), ("\\text{blue}", "blue"), ("plain", "plain"), ("$$x$$", "x"),
])
def test_strip_latex(text, expected):
    assert strip_latex(text) == expected
    assert strip_latex(strip_latex(text)) == expected


@pytest.mark.parametrize("text,expected", [
    ("3.5 meters", 3.5), ("1,200", 1200.0), ("\\frac{1}{2}", 0.5), ("3/4", 0.75), ("-2", -2.0),
    ("about 1e3 cm", 1000.0), ("$42$", 42.0), ("none", None), (".5", 0.5), ("45%", 45.0),
])
def test_parse_number(text, expected):
    assert parse_number(text) == expected


def test_option_map_with_and_without_letters():
    assert option_map(["A. red", "B) green", "(C) blue"]) == {"A": "red", "B": "green", "C": "blue"}
    assert option_map(["red", "green"]) == {"A": "red", "B": "green"}


@pytest.mark.parametrize("text,expected", [
    ("B", "B"), ("(B)", "B"), ("B. green", "B"), ("$B$", "B"), ("b", "B"), ("Option B", "B"),
    ("The answer is B.", "B"), ("green", "B"), ("the green one", "B"),
    ("B or C", None), ("red or green", None), ("", None), ("E", None), ("nothing", None),
])
def test_choice_letter(text, expected):
    assert choice_letter(text, OPTIONS) == expected
