"""Reasoning metrics of a model's benchmark outputs: length, format compliance, think/answer inconsistency.

* length — completion tokens when the engine reported them, else whitespace words of the response
  (``veripo.rewards.count_tokens``); also the ``<think>`` part alone.
* format compliance — fraction of responses passing the strict MM-EUREKA check (``veripo.rewards.format_ok``:
  exactly one ``<think>…</think><answer>…</answer>``).
* inconsistency rate (VerIPO Fig. 1C, spec §2.2) — among well-formed responses, the fraction a judge calls
  ``inconsistent`` (the final answer is not what the reasoning concludes):

      inconsistency_rate = #inconsistent / (#consistent + #inconsistent)

  ``unknown`` verdicts and judge failures are counted separately and left out of the rate.

The judge is a hook ``judge_fn(question, think, answer) -> "consistent" | "inconsistent" | "unknown"``. The
default, :func:`default_judge_fn`, imports the verifier's rule judge from ``veripo.verifier.judges`` lazily;
when it is not available the metric is skipped with a note.
"""
from __future__ import annotations

import re

from typing import Any, Callable

from veripo.rewards import choice_letter, count_tokens, extract_answer, extract_think, format_ok, parse_number, strip_latex

JudgeFn = Callable[[str, str, str], str]
VERDICTS = ("consistent", "inconsistent", "unknown")


_OPTION_LINE = re.compile(r"^[A-J][.)]\s*\S.*$", re.M)


def default_judge_fn() -> tuple[JudgeFn | None, str]:
    """The verifier's rule judge (``veripo.verifier.judges.RuleJudge``) as a ``judge_fn``, or ``(None, why not)``.

    The hook sees the question text only: options are read from its ``A. ...`` lines (so a conclusion stated
    as option text, "so the colour is blue", maps to its letter), and the problem type is inferred from the
    answer: a lone option letter -> multiple choice (letters A–J), a number -> numerical, else free text."""
    try:
        from veripo.verifier.judges import JudgeInput, RuleJudge
    except ImportError as e:
        return None, f"no judge: the verifier's rule judge is not importable ({e})"
    judge = RuleJudge()

    def judge_fn(question: str, think: str, answer: str) -> str:
        if choice_letter(answer) is not None and len(strip_latex(answer)) <= 3:
            ptype = "multiple choice"
        elif parse_number(answer) is not None:
            ptype = "numerical"
        else:
            ptype = "free-form"
        options = [m.group(0).strip() for m in _OPTION_LINE.finditer(question or "")]
        item = JudgeInput(question=question, think=think, answer=answer, options=options, problem_type=ptype)
        return normalize_verdict(judge.judge_one(item).verdict)

    return judge_fn, "veripo.verifier.judges.RuleJudge"


def normalize_verdict(value: Any) -> str:
    """Map a judge's answer onto consistent / inconsistent / unknown (garbage -> unknown)."""
    if isinstance(value, bool):
        return "consistent" if value else "inconsistent"
    text = str(getattr(value, "value", value)).strip().lower()
    if text.startswith("inconsistent"):
        return "inconsistent"
    if text.startswith("consistent"):
        return "consistent"
    return "unknown"


def reasoning_metrics(predictions: list[dict[str, Any]], judge_fn: JudgeFn | None | str = "default",
                      question_key: str = "veripo_question") -> dict[str, Any]:
    """Metrics over prediction rows (``response``; optional ``veripo_meta.completion_tokens`` and the question
    text under ``question_key``). ``judge_fn="default"`` uses :func:`default_judge_fn`; ``None`` skips it."""
    n = len(predictions)
    out: dict[str, Any] = {"n": n}
    if n == 0:
        return out
    responses = [str(p.get("response") or "") for p in predictions]
    tokens = [(p.get("veripo_meta") or {}).get("completion_tokens") for p in predictions]
    if all(isinstance(t, int) for t in tokens):
        out["mean_response_tokens"] = sum(tokens) / n
    out["mean_response_words"] = sum(count_tokens(r) for r in responses) / n
    thinks = [extract_think(r) for r in responses]
    out["mean_think_words"] = sum(count_tokens(t) for t in thinks if t) / max(1, sum(1 for t in thinks if t))
    ok = [format_ok(r) for r in responses]
    out["format_compliance"] = sum(ok) / n
    out["finish_length_rate"] = sum((p.get("veripo_meta") or {}).get("finish_reason") == "length"
                                    for p in predictions) / n
    if judge_fn == "default":
        judge_fn, source = default_judge_fn()
    else:
        source = "custom judge_fn" if judge_fn else "no judge: disabled"
    if judge_fn is None:
        out["inconsistency"] = {"skipped": True, "note": source}
        return out
    counts = dict.fromkeys(VERDICTS, 0)
    errors: list[str] = []
    for p, r, good in zip(predictions, responses, ok):
        if not good:
            continue
        try:
            verdict = normalize_verdict(judge_fn(str(p.get(question_key) or ""), extract_think(r) or "",
                                                 extract_answer(r) or ""))
        except Exception as e:  # a failing judge must not lose the eval
            verdict = "unknown"
            errors.append(f"{type(e).__name__}: {e}")
        counts[verdict] += 1
    judged = counts["consistent"] + counts["inconsistent"]
    out["inconsistency"] = {"judge": source, **counts, "judge_errors": len(errors), "errors": errors[:5],
                            "rate": counts["inconsistent"] / judged if judged else None}
    return out
