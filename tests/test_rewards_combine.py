"""Format reward (MM-EUREKA strict), length reward, user rewards by import path, weighted totals."""
import sys
import textwrap

import pytest

from veripo.data.schema import Sample
from veripo.rewards import RewardSpec, compute_rewards, format_reward, length_reward, register_reward

MC = Sample(problem_id="p", problem="q?", problem_type="multiple choice", solution="B", options=["A. red", "B. green"])


@pytest.mark.parametrize("text,ok", [
    ("<think>green ball</think><answer>B</answer>", 1.0),
    ("  <think>green ball</think>\n\n<answer> $B$ </answer>\n", 1.0),
    ("<think></think><answer>B</answer>", 0.0),                      # empty think
    ("<think>a</think><answer>B</answer><answer>C</answer>", 0.0),     # two answers
    ("<think>a</think><think>b</think><answer>B</answer>", 0.0),      # two thinks
    ("<answer>B</answer><think>a</think>", 0.0),                      # wrong order
    ("B", 0.0), ("", 0.0),
    ("<think>a</think><answer>B</answer> trailing words", 0.0),
])
def test_format_reward(text, ok):
    assert format_reward(text) == ok


def test_length_reward_needs_correct_answer_and_window():
    long_good = "<think>" + "word " * 50 + "</think><answer>B</answer>"
    short_good = "<think>word</think><answer>B</answer>"
    long_bad = "<think>" + "word " * 50 + "</think><answer>A</answer>"
    kw = {"min_tokens": 10, "max_tokens": 100}
    assert length_reward(long_good, MC, **kw) == 1.0
    assert length_reward(short_good, MC, **kw) == 0.0
    assert length_reward(long_bad, MC, **kw) == 0.0


def test_default_spec_is_accuracy_plus_half_format():
    responses = ["<think>x</think><answer>B</answer>", "<think>x</think><answer>A</answer>", "B"]
    out = compute_rewards(responses, [MC] * 3)
    assert out["accuracy"] == [1.0, 0.0, 0.0]
    assert out["format"] == [1.0, 1.0, 0.0]
    assert out["total"] == [1.5, 0.5, 0.0]


def test_user_reward_by_import_path_and_registry(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        def brevity(response, sample, scale=1.0):
            return scale / (1 + len(response))

        def groupwise(responses, samples):
            return [float(i) for i in range(len(responses))]
        groupwise.batched = True
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = RewardSpec(weights={"accuracy": 1.0, "my_rewards:brevity": 2.0, "my_rewards:groupwise": 0.0},
                      kwargs={"my_rewards:brevity": {"scale": 10.0}})
    responses = ["<think>x</think><answer>B</answer>", "<answer>A</answer>"]
    out = compute_rewards(responses, [MC, MC], spec)
    b = [10.0 / (1 + len(r)) for r in responses]
    assert out["my_rewards:brevity"] == pytest.approx(b)
    assert out["my_rewards:groupwise"] == [0.0, 1.0]
    assert out["total"] == pytest.approx([1.0 + 2 * b[0], 2 * b[1]])
    sys.modules.pop("my_rewards", None)

    @register_reward("always_one_test")
    def always_one(response, sample):
        return 1

    assert compute_rewards(["x"], [MC], RewardSpec(weights={"always_one_test": 3.0}))["total"] == [3.0]


def test_bad_reward_configs_and_values_are_named():
    with pytest.raises(ValueError, match="unknown reward 'acuracy'"):
        RewardSpec(weights={"acuracy": 1.0})
    with pytest.raises(ValueError, match="cannot import module"):
        RewardSpec(weights={"no_such_module_xyz:f": 1.0})
    with pytest.raises(ValueError, match="not in weights"):
        RewardSpec(weights={"accuracy": 1.0}, kwargs={"length": {}})

    @register_reward("nan_reward_test")
    def nan_reward(response, sample):
        return float("nan")

    with pytest.raises(ValueError, match="2 responses but 1 samples"):
        compute_rewards(["a", "b"], [MC])


def test_spec_loads_from_config_overrides():
    from veripo.config import load_config
    spec = load_config(RewardSpec, None, ["weights={accuracy: 1.0, format: 0.25, length: 0.2}",
                                          "kwargs={length: {min_tokens: 5}}"])
    assert spec.weights == {"accuracy": 1.0, "format": 0.25, "length": 0.2}
    out = compute_rewards(["<think>a b c d e f</think><answer>B</answer>", "<think>a b</think><answer>B</answer>"],
                          [MC, MC], spec)
    assert out["length"] == [1.0, 0.0]  # 6 think tokens are inside [5, 512]; 2 are not
    assert out["total"] == pytest.approx([1.0 + 0.25 + 0.2, 1.0 + 0.25])


def test_a_non_finite_user_reward_becomes_zero_with_a_counted_warning_naming_reward_and_rollout(caplog):
    """Fault: a user reward returns NaN / inf. Before: ValueError at step 0 (the step's rollouts lost).
    Now: the value is 0, the others are kept, and a warning names the reward and the rollout."""
    from veripo.rewards.combine import NONFINITE_REWARDS

    @register_reward("nan_inf_reward_test")
    def nan_inf(response, sample):
        return {"a": float("nan"), "b": float("inf"), "c": 0.5}[response]

    before = NONFINITE_REWARDS["nan_inf_reward_test"]
    with caplog.at_level("WARNING", logger="veripo.rewards.combine"):
        out = compute_rewards(["a", "b", "c"], [MC] * 3, RewardSpec(weights={"nan_inf_reward_test": 2.0}),
                              ids=["r-0", "r-1", "r-2"])
    assert out["nan_inf_reward_test"] == [0.0, 0.0, 0.5]
    assert out["total"] == [0.0, 0.0, 1.0]
    assert NONFINITE_REWARDS["nan_inf_reward_test"] == before + 2
    text = caplog.text
    assert "nan_inf_reward_test" in text and "r-0=nan" in text and "r-1=inf" in text and "r-2" not in text
