"""``--match official`` with ``--judge-url`` for a benchmark whose lmms-eval scorer asks an LLM judge (TempCompass).

lmms-eval 0.7.3 sends a TempCompass reply its hand-crafted rules cannot read to ChatGPT ("Correct" ->
1, "Incorrect" -> 0); when no judge answers (after its retries) the item scores 0. Here those items
(``ItemScore.judge_input``) go to the ``--judge-url`` judge (:mod:`veripo.eval.answer_judge`, question + gold +
the reduced reply): CORRECT -> 1, INCORRECT -> 0, unjudged (garbage, timeout, dead endpoint after the judge's
retries) -> 0 as in lmms-eval, named in a warning and counted. Without ``--judge-url`` they all score 0.

Added to the result: ``official_judge = {judge, prompt_version, n, n_correct, n_incorrect, n_unjudged,
unjudged: ["item: why", ...]}``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from veripo.eval.answer_judge import OpenAnswer
from veripo.eval.benchmarks import BenchmarkAdapter
from veripo.eval.predictions import MAX_LISTED_ERRORS, read_predictions, score_prediction_rows
from veripo.eval.scoring import ItemScore
from veripo.io_utils import write_rejects


def judge_items(items: list[ItemScore], judge: Any) -> dict[str, Any]:
    """Score the items lmms-eval would hand to its judge by ``judge``; returns the summary."""
    pending = [it for it in items if it.judge_input is not None]
    inputs = [OpenAnswer(item_id=it.item_id, question=it.judge_input["question"], gold=it.judge_input["gold"],
                         answer=it.judge_input["answer"]) for it in pending]
    try:
        results = judge.judge_many(inputs) if inputs else []
        verdicts = [(r.verdict, f"{getattr(r, 'judge', '?')}: {getattr(r, 'detail', '')}") for r in results]
    except Exception as e:  # the judge must not lose the run: everything it did not answer scores 0
        verdicts = [("unjudged", f"judge failed: {type(e).__name__}: {e}")] * len(inputs)
    verdicts += [("unjudged", "the judge returned no verdict")] * (len(inputs) - len(verdicts))
    unjudged: list[str] = []
    counts = {"correct": 0, "incorrect": 0}
    for it, (verdict, why) in zip(pending, verdicts):
        it.score = float(verdict == "correct")
        if verdict in counts:
            counts[verdict] += 1
        else:
            unjudged.append(f"{it.item_id}: unjudged, scored 0 as lmms-eval does ({why})")
    return {"judge": getattr(judge, "name", type(judge).__name__),
            "prompt_version": getattr(judge, "prompt_version", None), "n": len(pending),
            "n_correct": counts["correct"], "n_incorrect": counts["incorrect"], "n_unjudged": len(unjudged),
            "unjudged": unjudged[:MAX_LISTED_ERRORS]}


def score_with_official_judge(adapter: BenchmarkAdapter, path: str | Path, judge: Any,
                              log: Callable[[str], None] | None = None, rejects_dir: str | Path | None = None
                              ) -> tuple[dict[str, Any], list[ItemScore]]:
    """Score a predictions file with ``--match official``, the judge standing in for lmms-eval's; the malformed
    rows go to ``rejects_dir/rejects.jsonl`` when given."""
    path = Path(path)
    rows = read_predictions(path)
    items, errors = score_prediction_rows(adapter, [(w, r) for w, r, _ in rows], "official", source=path,
                                          raws={w: raw for w, _, raw in rows})
    if rejects_dir is not None:
        write_rejects(rejects_dir, errors)
    summary = judge_items(items, judge)
    result = adapter.aggregate(items, "official")
    result.update(predictions=str(path), n_malformed=len(errors), malformed=errors[:MAX_LISTED_ERRORS],
                  official_judge=summary)
    for msg in summary["unjudged"]:
        (log or print)(f"warning: {msg}")
    return result, items
