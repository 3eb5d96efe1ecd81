"""LLM judge for open-ended benchmark answers (MMVU's open-ended questions): is the model's answer the gold one?

The judge is any OpenAI-compatible chat endpoint (vLLM, ``veripo serve-judge``, a hosted API). Each item —
question, gold answer, the model's extracted answer — is rendered with the versioned prompt
``answer_judge_prompt_v1.txt`` (fields ``{question}``, ``{gold}``, ``{answer}``) and the reply must be the
single word ``CORRECT`` or ``INCORRECT`` (:func:`parse_correctness`; anything else is garbage).

Transport, retries and concurrency are the verifier's :class:`veripo.verifier.judges.OpenAIJudge` (the real
``openai`` client, ``timeout_s`` per request, ``retries`` with exponential backoff ``backoff_s · 2^k``, a
garbage reply retried with sampling): after the last attempt the item is ``unjudged`` with the reason — a
judge failure never raises. No rule fallback: an unjudged item is reported, not guessed.

    judge = build_answer_judge("http://127.0.0.1:8000/v1", model="Qwen2.5-72B-Instruct")
    [r.verdict for r in judge.judge_many([OpenAnswer("q1", "Name the technique.", "Impasto", "impasto")])]
    # -> ["correct"]   (or "incorrect" / "unjudged"; r.detail holds the reply or the last error)
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from veripo.verifier.config import JudgeConfig
from veripo.verifier.judges import OpenAIJudge

PROMPT_FILE = Path(__file__).with_name("answer_judge_prompt_v1.txt")
VERDICTS = ("correct", "incorrect")
_WRAPPING = " \t\r\n\"'`*_.!"


@dataclasses.dataclass
class OpenAnswer:
    """One open-ended item for the judge."""

    item_id: str
    question: str
    gold: str
    answer: str


def parse_correctness(text: str | None) -> str | None:
    """``"correct"`` / ``"incorrect"`` when the whole reply is the word CORRECT or INCORRECT (any case, surrounding
    whitespace, quotes, backticks, ``*``/``_`` emphasis or a final ``.``/``!`` allowed), else ``None``.

    Strict on purpose: ``"CORRECT, but ..."``, ``"Verdict: CORRECT"``, ``"not correct"`` or a reply naming both
    words are garbage (retried, then unjudged), never read as a verdict."""
    if not text:
        return None
    word = text.strip(_WRAPPING)
    if not re.fullmatch(r"[A-Za-z]+", word):
        return None
    word = word.lower()
    return word if word in VERDICTS else None


class AnswerJudge(OpenAIJudge):
    """:class:`~veripo.verifier.judges.OpenAIJudge` asking "is this answer the gold one?" instead of "is it
    consistent with the reasoning?": same client, retries, timeouts and ``unjudged`` handling."""

    def render(self, item: OpenAnswer) -> str:  # type: ignore[override]
        return self.template.format(question=item.question, gold=item.gold, answer=item.answer or "(empty)")

    def parse_reply(self, text: str | None) -> str | None:
        return parse_correctness(text)


def build_answer_judge(url: str, model: str = "judge", api_key: str | None = None, timeout_s: float = 30.0,
                       retries: int = 2, backoff_s: float = 0.5, concurrency: int = 8,
                       prompt_file: str | None = None) -> AnswerJudge:
    """An :class:`AnswerJudge` for the endpoint at ``url`` (base URL with ``/v1``, e.g.
    ``http://127.0.0.1:8000/v1``). ``api_key``: sent as is; default ``$VERIPO_JUDGE_API_KEY``, else a
    placeholder (vLLM needs none). Greedy replies of at most 16 tokens."""
    cfg = JudgeConfig(kind="openai", url=url, model=model, timeout_s=timeout_s, retries=retries,
                      backoff_s=backoff_s, concurrency=concurrency, max_tokens=16, temperature=0.0,
                      prompt_file=str(prompt_file or PROMPT_FILE), fallback="none")
    return AnswerJudge(cfg, api_key=api_key)
