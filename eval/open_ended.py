"""Score a predictions file, open-ended questions by an LLM judge (``veripo eval score|run --judge-url URL``).

``--match official`` on a benchmark whose lmms-eval scorer has its own judge fall-back (TempCompass) hands the
judge to that instead (:mod:`veripo.eval.official_judge`).

Without a judge this is :func:`veripo.eval.predictions.score_predictions_file`, unchanged (MMVU: open-ended
rows are not run, and a prediction row of one is reported as malformed). With a judge
(:mod:`veripo.eval.answer_judge`) the rows are split:

* every other row is scored and aggregated exactly as without a judge — ``overall``, ``tasks``,
  ``overall_by_match`` keep their meaning (MMVU: the multiple-choice subset, comparable with published
  MC-subset numbers);
* each open-ended row (``adapter.is_open_ended``) goes to the judge with its question, gold answer and the
  model's extracted answer (the first ``<answer>`` span, else the whole response): CORRECT -> 1,
  INCORRECT -> 0. A garbage reply, a timeout or a dead endpoint (after the judge's retries) leaves the item
  ``unjudged``: a warning naming it (``log``), listed in ``open_ended.unjudged``, counted in ``n_unjudged``,
  and left out of both figures below. The run goes on.

Added to the result:

    open_ended: {judge, prompt_version, n, n_judged, n_correct, n_unjudged, unjudged: ["where: why", ...],
                 accuracy = n_correct / n_judged  (None when nothing was judged),
                 tasks: per-task accuracy of the judged items}
    overall_all_questions = (Σ item scores of the other rows + n_correct) / (n_other + n_judged)   (micro)
    overall_all_questions_by_match = the same under the strict and the lenient letter rule
    n_scored_all_questions = n_other + n_judged
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from veripo.eval.answer_judge import OpenAnswer
from veripo.eval.benchmarks import BenchmarkAdapter, mean, per_task
from veripo.eval.official import OFFICIAL, official_scorer
from veripo.eval.predictions import MAX_LISTED_ERRORS, read_predictions, score_prediction_rows, score_predictions_file
from veripo.eval.scoring import DEFAULT_MATCH, ItemScore, answer_span
from veripo.io_utils import write_rejects


def score_predictions(adapter: BenchmarkAdapter, path: str | Path, match: str = DEFAULT_MATCH, judge: Any = None,
                      log: Callable[[str], None] | None = None, rejects_dir: str | Path | None = None
                      ) -> tuple[dict[str, Any], list[ItemScore]]:
    """(result, item scores incl. judged ones). ``judge``: an :class:`~veripo.eval.answer_judge.AnswerJudge`
    (anything with ``judge_many([OpenAnswer]) -> [result with .verdict/.detail/.judge]``) or ``None``.
    ``rejects_dir``: where the malformed rows go (``rejects.jsonl``, :func:`veripo.io_utils.write_rejects`)."""
    if judge is None:
        return score_predictions_file(adapter, path, match, rejects_dir)
    if match == OFFICIAL and not adapter.has_open_ended and official_scorer(adapter.name).judged:
        from veripo.eval.official_judge import score_with_official_judge

        return score_with_official_judge(adapter, path, judge, log, rejects_dir)
    if not adapter.open_ended:
        adapter = adapter.with_open_ended()
    path = Path(path)
    closed, opened, raws = [], [], {}
    for where, rec, raw in read_predictions(path):
        raws[where] = raw
        row = _open_ended_row(adapter, rec, path)
        if row is None:
            closed.append((where, rec))
        else:
            opened.append((where, rec, row))
    items, errors = score_prediction_rows(adapter, closed, match, source=path, raws=raws)
    result = adapter.aggregate(items, match)
    judged, unjudged, open_errors = judge_open_ended(adapter, opened, judge)
    errors += open_errors
    if rejects_dir is not None:
        write_rejects(rejects_dir, errors)
    result.update(predictions=str(path), n_malformed=len(errors), malformed=errors[:MAX_LISTED_ERRORS])
    n_correct = sum(it.score for it in judged)
    result["open_ended"] = {
        "judge": getattr(judge, "name", type(judge).__name__),
        "prompt_version": getattr(judge, "prompt_version", None),
        "n": len(judged) + len(unjudged), "n_judged": len(judged), "n_correct": int(n_correct),
        "accuracy": n_correct / len(judged) if judged else None,
        "n_unjudged": len(unjudged), "unjudged": unjudged[:MAX_LISTED_ERRORS],
        "tasks": per_task(judged),
    }
    every = items + judged
    result["overall_all_questions"] = mean(it.score for it in every)
    result["overall_all_questions_by_match"] = {"strict": mean(it.score_strict for it in every),
                                                "lenient": mean(it.score_lenient for it in every)}
    result["n_scored_all_questions"] = len(every)
    for msg in unjudged:
        (log or print)(f"warning: {msg}")
    return result, every


def _open_ended_row(adapter: BenchmarkAdapter, rec: Any, path: Path) -> dict[str, Any] | None:
    """The flat row of a well-formed open-ended prediction, else ``None`` (scored / reported the usual way)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("response"), str):
        return None
    try:
        rows = adapter.flatten(rec, path)
    except ValueError:
        return None
    return rows[0] if len(rows) == 1 and adapter.is_open_ended(rows[0]) else None


def judge_open_ended(adapter: BenchmarkAdapter, opened: list[tuple[str, dict[str, Any], dict[str, Any]]],
                     judge: Any) -> tuple[list[ItemScore], list[str], list[str]]:
    """``[(where, prediction record, flat row)]`` -> (judged item scores, unjudged messages, malformed rows)."""
    inputs: list[OpenAnswer] = []
    kept: list[tuple[str, dict[str, Any]]] = []
    errors: list[str] = []
    seen: set[str] = set()
    for where, rec, row in opened:
        try:
            item_id = adapter.item_id(row)
            question, gold = adapter.open_ended_input(row)
            if item_id in seen:
                raise ValueError(f"duplicate prediction for item {item_id!r} (the first one is kept)")
        except ValueError as e:
            errors.append(f"{where}: {e}")
            continue
        seen.add(item_id)
        inputs.append(OpenAnswer(item_id=item_id, question=question, gold=gold, answer=answer_span(rec["response"])))
        kept.append((where, row))
    try:
        results = judge.judge_many(inputs) if inputs else []
        reasons = [(r.verdict, f"{getattr(r, 'judge', '?')}: {getattr(r, 'detail', '')}") for r in results]
    except Exception as e:  # the judge must not lose the run: everything it did not answer is unjudged
        reasons = [("unjudged", f"judge failed: {type(e).__name__}: {e}")] * len(inputs)
    reasons += [("unjudged", "the judge returned no verdict")] * (len(inputs) - len(reasons))
    judged: list[ItemScore] = []
    unjudged: list[str] = []
    for (where, row), item, (verdict, why) in zip(kept, inputs, reasons):
        if verdict in ("correct", "incorrect"):
            s = float(verdict == "correct")
            judged.append(ItemScore(item_id=item.item_id, task=adapter.task_of(row), kind="judged", gold=item.gold,
                                    pred=item.answer or None, score=s, score_strict=s, score_lenient=s,
                                    tasks=adapter.tasks_of(row), groups=adapter.groups_of(row)))
        else:
            unjudged.append(f"{where}: open-ended item {item.item_id} unjudged ({why})")
    return judged, unjudged, errors


def open_ended_summary(result: dict[str, Any]) -> str:
    """One line for the log: open-ended accuracy, all-questions overall, unjudged count."""
    oe = result["open_ended"]
    acc = "n/a" if oe["accuracy"] is None else f"{oe['accuracy']:.4f}"
    return (f"open-ended (LLM judge {oe['judge']}): accuracy {acc} over {oe['n_judged']} judged, "
            f"{oe['n_unjudged']} unjudged; all questions {result['overall_all_questions']:.4f} over "
            f"{result['n_scored_all_questions']}")
