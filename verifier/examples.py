"""A small, realistic set of GRPO rollouts covering every verifier case (consistent, inconsistent,
repetitive, malformed, truncated, numeric, free-form), for tests, docs and smoke runs:

    write_example_rollouts("rollouts.jsonl")   # then: veripo verify --rollouts rollouts.jsonl --out out/
"""
from __future__ import annotations

import json
from pathlib import Path

from veripo.data.schema import Sample
from veripo.prompts import question_text
from veripo.records import RolloutRecord

COLOR = {"problem_id": "color-1", "problem": "What colour is the ball that rolls in from the left?",
         "problem_type": "multiple choice", "options": ["A. red", "B. green", "C. blue", "D. yellow"],
         "solution": "<answer>B</answer>", "data_type": "video", "path": "videos/color-1.mp4"}
COUNT = {"problem_id": "count-1", "problem": "How many cubes appear in the video?", "problem_type": "numerical",
         "solution": "<answer>3</answer>", "data_type": "video", "path": "videos/count-1.mp4"}
EASY = {"problem_id": "easy-1", "problem": "Which shape is shown?", "problem_type": "multiple choice",
        "options": ["A. circle", "B. square"], "solution": "A", "data_type": "video", "path": "videos/easy-1.mp4"}

REP = "I see a ball on the table. "

RESPONSES = {
    COLOR["problem_id"]: [
        # 0 good, longest reasoning
        "<think> The ball enters from the left edge of the frame. Its colour is clearly green against the grey "
        "floor, and it keeps that colour until it stops. So the answer is B. </think><answer> $B$ </answer>",
        # 1 good, shorter
        "<think> The ball is green, so the answer is B. </think><answer>B</answer>",
        # 2 correct but inconsistent (reasoning concludes blue = C)
        "<think> The ball looks bluish in the first frames, so the colour is blue. </think><answer>B</answer>",
        # 3 wrong, consistent
        "<think> The ball appears red when it enters, so the answer is A. </think><answer>A</answer>",
        # 4 repetitive but correct
        "<think> " + REP * 4 + "It is green, so the answer is B. </think><answer>B</answer>",
        # 5 bad format (no answer block)
        "The ball is green. B",
    ],
    COUNT["problem_id"]: [
        "<think> First one cube, then a second, then a third cube appear. So the answer is $3$. </think>"
        "<answer> $3$ </answer>",
        "<think> I count two cubes in total, so the answer is 2. </think><answer>2</answer>",
        "<think> Counting the cubes one by one gives three, so the answer is 3. </think><answer>4</answer>",
        "<think> There are cubes. There are cubes. There are cubes. There are cubes. So the answer is 3",
    ],
    EASY["problem_id"]: [
        "<think> The outline is round, so the answer is A. </think><answer>A</answer>",
        "<think> It is a round shape with no corners, so the answer is A. </think><answer>A</answer>",
    ],
}


def example_rollouts(step: int = 0) -> list[RolloutRecord]:
    out = []
    for row in (COLOR, COUNT, EASY):
        sample = Sample.from_dict(row)
        pid = sample.problem_id
        for i, response in enumerate(RESPONSES[pid]):
            truncated = not response.rstrip().endswith("</answer>") and "<think>" in response
            out.append(RolloutRecord(
                rollout_id=f"{step}-{pid}-{i}", step=step, group_id=f"{step}-{pid}", sample=sample,
                prompt=question_text(sample), response=response, token_ids=[], logps=[],
                rewards={}, finish_reason="length" if truncated else "stop"))
    return out


def write_example_rollouts(path: str | Path, malformed: bool = False, step: int = 0) -> Path:
    """Write the examples as rollouts.jsonl; ``malformed`` adds a non-JSON line and a row missing fields."""
    path = Path(path)
    lines = [json.dumps(r.to_dict()) for r in example_rollouts(step)]
    if malformed:
        lines.insert(2, '{"rollout_id": "torn", "step": 0,')
        lines.insert(5, json.dumps({"rollout_id": "no-response", "step": 0, "group_id": "g", "sample": COLOR,
                                    "prompt": "p"}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
