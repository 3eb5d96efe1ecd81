"""The prompt every stage shows the policy (GRPO, SFT, DPO, eval): one place, so they never drift.

The reasoning prompt follows VerIPO's evaluation prompt (MM-EUREKA style, spec/veripo-method.md §4):
think inside ``<think></think>``, answer inside ``<answer></answer>``. The video comes before the text in
the user turn; no system prompt beyond the template's default.
"""
from __future__ import annotations

from typing import Any

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


def question_text(sample: Any, reasoning: bool = True) -> str:
    """The user text for a sample (anything with ``problem``, ``problem_type``, ``options``)."""
    get = (lambda k, d=None: sample.get(k, d)) if isinstance(sample, dict) else (lambda k, d=None: getattr(sample, k, d))
    parts = [str(get("problem"))]
    options = get("options") or []
    if options:
        parts.append("Options:\n" + "\n".join(options))
    ptype = get("problem_type", "free-form")
    if reasoning:
        parts.append(f"{REASONING_INSTRUCTION} {TYPE_HINTS.get(ptype, '')}".strip())
    else:
        parts.append(DIRECT_INSTRUCTION if ptype == "multiple choice" else TYPE_HINTS.get(ptype, ""))
    return "\n".join(p for p in parts if p)


def chat_messages(sample: Any, reasoning: bool = True) -> list[dict[str, Any]]:
    """One user turn: the visual placeholder (video or image) first, then the question text."""
    get = (lambda k, d=None: sample.get(k, d)) if isinstance(sample, dict) else (lambda k, d=None: getattr(sample, k, d))
    content: list[dict[str, Any]] = []
    dtype = get("data_type", "text")
    if dtype in ("video", "image"):
        content.append({"type": dtype})
    content.append({"type": "text", "text": question_text(sample, reasoning)})
    return [{"role": "user", "content": content}]
