"""Score a predictions JSONL: each line = one benchmark row as published (flat, one question) + ``response``.

Malformed lines (not valid UTF-8 or JSON, no ``response``, a row the adapter cannot read, a duplicate item) are
reported as ``file:line: why``, counted in ``n_malformed`` and skipped; they never stop the scoring. A JSONL file is
read in binary one line at a time (:func:`veripo.io_utils.iter_rows`), so one bad byte costs one line; with
``rejects_dir`` the set-aside lines are written to ``rejects_dir/rejects.jsonl`` (:func:`veripo.io_utils.write_rejects`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from veripo.eval.benchmarks import BenchmarkAdapter, read_records
from veripo.eval.official import check_match
from veripo.eval.scoring import DEFAULT_MATCH, ItemScore
from veripo.io_utils import BadRow, iter_rows, write_rejects

MAX_LISTED_ERRORS = 50


def read_predictions(path: Path) -> list[tuple[str, Any, bytes]]:
    """``(where, record or ValueError, raw line)``; JSONL is read in binary line by line, other formats whole."""
    if path.suffix.lower() == ".jsonl" and path.exists():
        return [(f"{path}:{lineno}", rec, raw) for lineno, rec, raw in iter_rows(path)]
    return [(where, rec, b"") for where, rec in read_records(path)]


def score_prediction_rows(adapter: BenchmarkAdapter, records: list[tuple[str, Any]], match: str = DEFAULT_MATCH,
                          source: Path | None = None, raws: dict[str, bytes] | None = None
                          ) -> tuple[list[ItemScore], list[str]]:
    """``[(where, record)]`` -> (item scores, error messages); ``raws`` (where -> raw line) for the rejects."""
    check_match(adapter, match)
    raws = raws or {}
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
            file, _, line = where.rpartition(":")
            errors.append(BadRow(file, int(line), str(e), raws.get(where, b"")) if line.isdigit() and file
                          else f"{where}: {e}")
            continue
        seen.add(item.item_id)
        items.append(item)
    return items, errors


def score_predictions_file(adapter: BenchmarkAdapter, path: str | Path, match: str = DEFAULT_MATCH,
                           rejects_dir: str | Path | None = None) -> tuple[dict[str, Any], list[ItemScore]]:
    """Score a predictions JSONL; returns (the result object, the item scores)."""
    path = Path(path)
    rows = read_predictions(path)
    items, errors = score_prediction_rows(adapter, [(w, r) for w, r, _ in rows], match, source=path,
                                          raws={w: raw for w, _, raw in rows})
    if rejects_dir is not None:
        write_rejects(rejects_dir, errors)
    result = adapter.aggregate(items, match)
    result.update(predictions=str(path), n_malformed=len(errors), malformed=errors[:MAX_LISTED_ERRORS])
    return result, items
