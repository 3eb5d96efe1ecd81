"""The prompt every stage shows the policy (GRPO, SFT, DPO, eval): one place, so they never drift.

The reasoning prompt follows VerIPO's evaluation prompt (MM-EUREKA style, spec/veripo-method.md §4):
think inside ``<think></think>``, answer inside ``<answer></answer>``. The video comes before the text in
the user turn; no system prompt beyond the template's default.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from veripo.data.schema import Sample

REASONING_INSTRUCTION = (
    "Think about the question step by step inside <think> </think>, then give the final answer inside "
    "<answer> </answer>."
)
TYPE_HINTS = {
    "multiple choice": "Answer with the option's letter.",
    "numerical": "The answer must be a number.",
    "regression": "The answer must be a number.",
    "OCR": "Answer with the text.",
    "free-form": "Answer briefly.",
}
DIRECT_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def question_text(sample: "Sample", reasoning: bool = True) -> str:
    """The user text for a sample: its question, options and the instruction for its problem type."""
    parts = [sample.problem]
    if sample.options:
        parts.append("Options:\n" + "\n".join(sample.options))
    ptype = sample.problem_type
    if reasoning:
        parts.append(f"{REASONING_INSTRUCTION} {TYPE_HINTS.get(ptype, '')}".strip())
    else:
        parts.append(DIRECT_INSTRUCTION if ptype == "multiple choice" else TYPE_HINTS.get(ptype, ""))
    return "\n".join(p for p in parts if p)


def chat_messages(sample: "Sample", reasoning: bool = True) -> list[dict[str, Any]]:
    """One user turn: the visual placeholder (video or image) first, then the question text."""
    content: list[dict[str, Any]] = []
    if sample.data_type in ("video", "image"):
        content.append({"type": sample.data_type})
    content.append({"type": "text", "text": question_text(sample, reasoning)})
    return [{"role": "user", "content": content}]
