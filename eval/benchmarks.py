"""The benchmark adapter registry and the shared adapter machinery.

An adapter turns a benchmark's *published* annotation file (JSON / JSONL / parquet exactly as released) into
flat rows — one question each, the benchmark's own field names kept — and each row into our
:class:`~veripo.data.schema.Sample` for running. It scores a row's ``response`` with the benchmark's rule and
aggregates the item scores into the benchmark's own ``overall`` (a micro average unless the benchmark says
otherwise: VSI-Bench averages its task types, MVBench its 20 tasks).

    adapter = get_adapter("vsibench")
    rows = adapter.read_rows("test-00000-of-00001.parquet", errors)      # [(where, row)]
    sample = adapter.to_sample(row, video_dir)                           # Sample, path resolved
    item = adapter.score_row(row, response, match="strict")              # ItemScore
    result = adapter.aggregate([item, ...])                              # {"overall", "tasks", ...}

Prediction files (``veripo eval score``) are JSONL rows = a flat row + ``response``.

``get_adapter("name:variant")`` picks one variant of an adapter that reads several benchmarks' files
(``veripo_json:vsi_bench``). Questions only an LLM judge can score (MMVU's open-ended ones) are left out
unless the adapter is taken ``with_open_ended()`` (``--judge-url``, :mod:`veripo.eval.open_ended`).
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from veripo.data.schema import Sample
from veripo.errors import DataError
from veripo.eval.official import OFFICIAL, aggregate_official, score_official
from veripo.eval.scoring import (DEFAULT_MATCH, ItemScore, pick, score_mra, score_multiple_choice,
                                 score_numeric_exact, score_open)

LETTERS = "ABCDEFGHIJ"
VIDEO_EXTENSIONS = (".mp4", ".MP4", ".mkv", ".webm", ".avi", ".mov")
_ADAPTER_MODULES = ("veripo.eval.adapter_vsibench", "veripo.eval.adapters_mc", "veripo.eval.adapter_samples",
                    "veripo.eval.adapter_veripo_json")
_REGISTRY: dict[str, "BenchmarkAdapter"] = {}


def register(cls: type["BenchmarkAdapter"]) -> type["BenchmarkAdapter"]:
    """Class decorator: make an adapter available under ``cls.name``."""
    _REGISTRY[cls.name] = cls()
    return cls


def _load_all() -> None:
    for mod in _ADAPTER_MODULES:
        importlib.import_module(mod)


def benchmark_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_adapter(name: str) -> "BenchmarkAdapter":
    """The adapter registered as ``name`` (case, ``-`` and ``_`` ignored); ``"name:variant"`` -> its variant."""
    _load_all()
    base, sep, variant = name.partition(":")
    key = base.lower().replace("-", "").replace("_", "")
    for n, adapter in _REGISTRY.items():
        if n.replace("_", "") == key:
            return adapter.variant(variant) if sep else adapter
    raise DataError(f"unknown benchmark {name!r}; choose from: {', '.join(sorted(_REGISTRY))}")


# ---------------------------------------------------------------- reading published files

def plain(value: Any) -> Any:
    """numpy/pandas values from parquet -> plain JSON-able Python (arrays -> lists, NaN -> None)."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        return None  # embedded images (VideoMMMU adaptation) are not needed for video QA
    return value


def read_records(path: str | Path) -> list[tuple[str, Any]]:
    """Raw records of one file as ``[(where, record)]``: JSON list items, JSON dict entries (the key is kept as
    ``_key``), JSONL lines or parquet rows. A JSONL line that is not JSON becomes a ``ValueError`` record."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"annotation file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover
            raise DataError(f"{path}: reading parquet needs pandas + pyarrow ({e})") from None
        frame = pd.read_parquet(path)
        return [(f"{path}:row {i + 1}", {k: plain(v) for k, v in rec.items()})
                for i, rec in enumerate(frame.to_dict(orient="records"))]
    if suffix == ".jsonl":  # binary, line by line: a bad byte or line is a ValueError record (veripo.io_utils)
        from veripo.io_utils import iter_rows

        return [(f"{path}:{lineno}", rec) for lineno, rec, _ in iter_rows(path)]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, list):
        return [(f"{path}:item {i + 1}", r) for i, r in enumerate(data)]
    if isinstance(data, dict):
        return [(f"{path}:key {k}", dict(v, _key=k) if isinstance(v, dict) else v) for k, v in data.items()]
    raise DataError(f"{path}: expected a JSON list or object, got {type(data).__name__}")


def annotation_files(path: str | Path, suffixes: tuple[str, ...] = (".json", ".jsonl", ".parquet")) -> list[Path]:
    """A file, or every annotation file directly inside a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith("."))
        if not files:
            raise DataError(f"{path}: no {'/'.join(suffixes)} annotation files in this folder")
        return files
    if not path.exists():
        raise DataError(f"annotation file not found: {path}")
    return [path]


def letter_options(texts: list[str]) -> list[str]:
    """``["red", "green"]`` -> ``["A. red", "B. green"]``."""
    return [f"{LETTERS[i]}. {str(t).strip()}" for i, t in enumerate(texts)]


def short_hash(*parts: Any) -> str:
    """A stable 10-hex id for rows the benchmark releases without one (MVBench, TempCompass)."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def require(row: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if row.get(k) in (None, "", [])]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")


# ---------------------------------------------------------------- aggregation

def mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0


def per_task(items: list[ItemScore], attr: str = "score") -> dict[str, dict[str, float]]:
    """``{task: {"score": mean, "n": count}}``; an item counts toward its ``task`` and each of ``tasks``."""
    buckets: dict[str, list[float]] = defaultdict(list)
    for it in items:
        labels = it.tasks or (it.task,)
        for label in labels:
            buckets[label].append(getattr(it, attr))
    return {t: {"score": mean(v), "n": len(v)} for t, v in sorted(buckets.items())}


def per_group(items: list[ItemScore], attr: str = "score") -> dict[str, dict[str, dict[str, float]]]:
    """Other breakdowns (e.g. Video-MME duration): ``{group_name: {value: {"score", "n"}}}``."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for it in items:
        for g, v in it.groups.items():
            out[g][v].append(getattr(it, attr))
    return {g: {v: {"score": mean(s), "n": len(s)} for v, s in sorted(d.items())} for g, d in out.items()}


class BenchmarkAdapter:
    """Base adapter. Subclasses set the class attributes and implement :meth:`read_rows` / :meth:`_build`."""

    name: str = ""
    title: str = ""
    annotation_hint: str = ""  # which released file(s) to pass as --annotations
    video_hint: str = ""  # how videos are laid out under --video-dir
    scorer_reference: str = ""  # the reference scorer the strict / lenient modes follow (and how they differ)
    aggregation: str = "micro average over items"
    has_open_ended: bool = False  # the benchmark has questions only an LLM judge can score (MMVU)
    open_ended: bool = False  # this instance reads them too (with_open_ended); the registry's never does

    # -- variants (one registry instance each; these return modified copies, never mutate it)
    def variant(self, name: str) -> "BenchmarkAdapter":
        """``get_adapter("name:variant")``; adapters reading several benchmarks' files override this."""
        raise DataError(f"benchmark {self.name!r} has no variants (got {self.name}:{name})")

    def with_open_ended(self) -> "BenchmarkAdapter":
        """A copy that also reads and runs the open-ended questions, to be scored by an LLM judge."""
        if not self.has_open_ended:
            judged = ", ".join(n for n, a in sorted(_REGISTRY.items()) if a.has_open_ended)
            raise DataError(f"benchmark {self.name!r} has no open-ended questions for an LLM judge "
                            f"(--judge-url applies to: {judged}; and tempcompass with --match official)")
        new = copy.copy(self)
        new.open_ended = True
        return new

    def is_open_ended(self, row: dict[str, Any]) -> bool:
        """Whether a flat row is a question only an LLM judge can score."""
        return False

    def open_ended_input(self, row: dict[str, Any]) -> tuple[str, str]:
        """``(question, gold answer)`` of an open-ended row, for the judge; raise ValueError when malformed."""
        raise NotImplementedError

    # -- reading
    def read_rows(self, path: str | Path, errors: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Flat rows (one question each, published field names) as ``[(where, row)]``; bad records go to
        ``errors`` as ``where: why``."""
        out = []
        for file in annotation_files(path):
            for where, rec in read_records(file):
                self._collect(where, rec, file, out, errors)
        return out

    def _collect(self, where: str, rec: Any, file: Path, out: list, errors: list[str] | None) -> None:
        if isinstance(rec, ValueError) or not isinstance(rec, dict):
            why = rec if isinstance(rec, ValueError) else f"expected a JSON object, got {type(rec).__name__}"
            _report(errors, f"{where}: {why}")
            return
        for row in self.flatten(rec, file):
            out.append((where, row))

    def flatten(self, rec: dict[str, Any], file: Path) -> list[dict[str, Any]]:
        """Hook: one published record -> its flat rows, adding context a row needs from its file (e.g. TOMATO's
        reasoning type = file name; LVBench's per-video record holds a list of questions)."""
        return [rec]

    # -- conversion
    def item_id(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def task_of(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def _build(self, row: dict[str, Any]) -> dict[str, Any]:
        """``{"problem", "problem_type", "solution", "options"}`` for a row; raise ValueError when malformed."""
        raise NotImplementedError

    def video_candidates(self, row: dict[str, Any], video_dir: Path) -> list[Path]:
        """Where this row's video may be, in order of preference."""
        raise NotImplementedError

    def find_video(self, row: dict[str, Any], video_dir: str | Path) -> Path:
        cands = self.video_candidates(row, Path(video_dir))
        expanded: list[Path] = []
        for c in cands:
            expanded.append(c)
            if c.suffix in VIDEO_EXTENSIONS:
                expanded += [c.with_suffix(ext) for ext in VIDEO_EXTENSIONS if ext != c.suffix]
        for c in expanded:
            if c.is_file():
                return c
        tried = ", ".join(str(c) for c in cands[:3])
        raise FileNotFoundError(f"video not found (tried {tried})")

    def to_sample(self, row: dict[str, Any], video_dir: str | Path | None = None) -> Sample:
        """Our Sample for a flat row (``path`` resolved when ``video_dir`` is given). Raises ValueError."""
        fields = self._build(row)
        path = str(self.find_video(row, video_dir)) if video_dir is not None else None
        return Sample(problem_id=f"{self.name}:{self.item_id(row)}", problem=fields["problem"],
                      problem_type=fields["problem_type"], solution=str(fields["solution"]), data_type="video",
                      options=list(fields.get("options") or []), path=path, data_source=self.name,
                      extra={"task": self.task_of(row), "benchmark": self.name})

    # -- scoring
    def groups_of(self, row: dict[str, Any]) -> dict[str, str]:
        return {}

    def tasks_of(self, row: dict[str, Any]) -> tuple[str, ...]:
        return ()

    def score_row(self, row: dict[str, Any], response: str | None, match: str = DEFAULT_MATCH) -> ItemScore:
        """Score one response to one flat row. Raises ValueError when the row is malformed."""
        f = self._build(row)
        ptype, gold = f["problem_type"], str(f["solution"])
        if ptype == "multiple choice":
            pred, s, l = score_multiple_choice(response, gold, f.get("options"))
            kind = "mc"
        elif ptype == "regression":
            try:
                g = float(gold)
            except ValueError:
                raise ValueError(f"ground truth {gold!r} is not a number") from None
            pred, s, l = score_mra(response, g)
            kind = "mra"
        elif ptype == "numerical":
            pred, s, l = score_numeric_exact(response, gold)
            kind = "numeric"
        else:
            pred, s, l = score_open(response, gold)
            kind = "open"
        item = ItemScore(item_id=self.item_id(row), task=self.task_of(row), kind=kind, gold=gold, pred=pred,
                         score=pick(s, l, match), score_strict=s, score_lenient=l, tasks=self.tasks_of(row),
                         groups=self.groups_of(row))
        if match == OFFICIAL:
            item = score_official(self, row, response or "", item)
        return item

    def overall(self, items: list[ItemScore], attr: str = "score") -> float:
        return mean(getattr(it, attr) for it in items)

    def aggregate(self, items: list[ItemScore], match: str = DEFAULT_MATCH) -> dict[str, Any]:
        """``overall`` (the benchmark's own average), per-task scores, and the match modes' overall. Under
        ``official`` the overall, tasks and groups are lmms-eval's (:mod:`veripo.eval.official`)."""
        out = {
            "benchmark": self.name,
            "match": match,
            "overall": self.overall(items),
            "overall_by_match": {"strict": self.overall(items, "score_strict"),
                                 "lenient": self.overall(items, "score_lenient")},
            "aggregation": self.aggregation,
            "n_scored": len(items),
            "tasks": self.task_table(items),
            "groups": per_group(items),
        }
        if match == OFFICIAL:
            off = aggregate_official(self, items)
            out.update(overall=off["overall"], tasks=off["tasks"], groups=off["groups"], scorer=off["reference"],
                       aggregation=f"as {off['reference']}", n_counted=off["n_counted"])
            out["overall_by_match"][OFFICIAL] = off["overall"]
            if "n_judge_items" in off:
                out["n_judge_items"] = off["n_judge_items"]
        return out

    def task_table(self, items: list[ItemScore]) -> dict[str, dict[str, float]]:
        return per_task(items)


def _report(errors: list[str] | None, msg: str) -> None:
    if errors is None:
        raise DataError(msg)
    errors.append(msg)

