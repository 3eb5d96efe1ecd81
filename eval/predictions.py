"""Score a predictions JSONL: each line = one benchmark row as published (flat, one question) + ``response``.

Malformed lines (not JSON, no ``response``, a row the adapter cannot read, a duplicate item) are reported as
``file:line: why``, counted in ``n_malformed`` and skipped; they never stop the scoring.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from veripo.eval.benchmarks import BenchmarkAdapter, read_records
from veripo.eval.official import check_match
from veripo.eval.scoring import DEFAULT_MATCH, ItemScore

MAX_LISTED_ERRORS = 50


def score_prediction_rows(adapter: BenchmarkAdapter, records: list[tuple[str, Any]], match: str = DEFAULT_MATCH,
                          source: Path | None = None) -> tuple[list[ItemScore], list[str]]:
    """``[(where, record)]`` -> (item scores, error messages)."""
    check_match(adapter, match)
    items: list[ItemScore] = []
    errors: list[str] = []
    seen: set[str] = set()
    for where, rec in records:
        try:
            if isinstance(rec, ValueError):
                raise rec
            if not isinstance(rec, dict):
                raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
            if not isinstance(rec.get("response"), str):
                raise ValueError("missing 'response' (the raw model output, a string)")
            rows = adapter.flatten(rec, source or Path("predictions"))
            if len(rows) != 1:
                raise ValueError(f"expected one question per prediction row, found {len(rows)}")
            item = adapter.score_row(rows[0], rec["response"], match)
            if item.item_id in seen:
                raise ValueError(f"duplicate prediction for item {item.item_id!r} (the first one is kept)")
        except ValueError as e:
            errors.append(f"{where}: {e}")
            continue
        seen.add(item.item_id)
        items.append(item)
    return items, errors


def score_predictions_file(adapter: BenchmarkAdapter, path: str | Path, match: str = DEFAULT_MATCH
                           ) -> tuple[dict[str, Any], list[ItemScore]]:
    """Score a predictions JSONL; returns (the result object, the item scores)."""
    path = Path(path)
    items, errors = score_prediction_rows(adapter, read_records(path), match, source=path)
    result = adapter.aggregate(items, match)
    result.update(predictions=str(path), n_malformed=len(errors), malformed=errors[:MAX_LISTED_ERRORS])
    return result, items
