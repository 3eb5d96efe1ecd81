"""One meaning per name: the ``sample`` of a rollout or pair record is a :class:`~veripo.data.schema.Sample`, made
once where the row is read, and written back to the very same JSON row."""
import json
import re

import pytest

from veripo.data.schema import Sample
from veripo.records import PairRecord, RolloutRecord
from veripo.rewards import register_reward

ROW = {"problem_id": "q1", "problem": "What colour is the ball?", "problem_type": "multiple choice",  # as GRPO writes it
       "solution": "<answer>B</answer>", "data_type": "video", "options": ["A. red", "B. green"],
       "path": "/videos/q1.mp4", "task": "color", "meta": {"colour": "green"}}
ROLLOUT = {"rollout_id": "000000-q1-00", "step": 0, "group_id": "000000-q1", "sample": ROW, "prompt": "p",
           "response": "<think>green</think><answer>B</answer>", "token_ids": [1, 2], "logps": [-0.5, -0.25],
           "rewards": {"accuracy": 1.0, "total": 1.0}, "advantage": 0.5, "kept": True, "finish_reason": "stop",
           "timings": {"generate_s": 0.1}, "step_rollouts": 4}


def test_a_stored_rollout_reads_as_a_sample_and_writes_back_the_same_row():
    rec = RolloutRecord.from_dict(json.loads(json.dumps(ROLLOUT)))
    assert isinstance(rec.sample, Sample)
    assert (rec.sample.answer, rec.sample.extra["task"], rec.prompt_id) == ("B", "color", "q1")
    assert json.dumps(rec.to_dict()) == json.dumps(ROLLOUT)


def test_a_pair_row_reads_as_a_sample_and_writes_back_the_same_row():
    row = {"pair_id": "p1", "prompt_id": "q1", "kind": "quality", "sample": ROW, "prompt": "p", "chosen": "a",
           "rejected": "b", "provenance": {"chosen": ["r0"]}, "chosen_ids": [1], "rejected_ids": None}
    pair = PairRecord.from_dict(json.loads(json.dumps(row)))
    assert isinstance(pair.sample, Sample) and pair.sample.problem_id == "q1"
    assert json.dumps(pair.to_dict()) == json.dumps(row)


@pytest.mark.parametrize("sample,why", [
    ("q1", "'sample' must be a JSON object (the data row), got str"),
    ({**ROW, "problem_type": "essay"}, "sample: problem_type 'essay' is not one of"),
])
def test_a_record_whose_sample_is_not_a_data_row_is_refused_where_it_is_read(sample, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        RolloutRecord.from_dict({**ROLLOUT, "sample": sample})


def test_a_record_built_in_code_needs_a_sample():
    with pytest.raises(TypeError, match="sample must be a Sample"):
        RolloutRecord(rollout_id="r", step=0, group_id="g", sample=dict(ROW), prompt="p", response="r")


def test_a_user_accuracy_reward_sees_a_sample_in_the_verifier_as_in_grpo():
    """Bug fixed: the verifier gave a user's ``accuracy_reward`` the record's dict, GRPO a Sample, so a reward that
    reads ``sample.answer`` worked in one stage and crashed in the other."""
    from veripo.rewards import RewardSpec, compute_rewards
    from veripo.verifier.config import VerifierConfig
    from veripo.verifier.pipeline import Verifier

    seen = []

    @register_reward("answer_is_b_test")
    def answer_is_b(response, sample):
        seen.append(type(sample))
        return float(sample.answer == "B")

    rec = RolloutRecord.from_dict(ROLLOUT)
    assert compute_rewards([rec.response], [rec.sample], RewardSpec(weights={"answer_is_b_test": 1.0}))["total"] == [1.0]
    cfg = VerifierConfig()
    cfg.accuracy_reward, cfg.judge.kind = "answer_is_b_test", "rule"
    (v,) = Verifier(cfg).verify([rec])
    assert v.accuracy == 1.0 and v.correct
    assert seen == [Sample, Sample]
