"""Benchmarks whose rows are already in our Sample schema (:mod:`veripo.data.schema`, Video-R1 compatible).

``synthetic`` — the synthetic video-reasoning task's held-out split (``veripo data`` writes ``test.jsonl``), so
loop iterations can be compared on it. Per-task = the row's ``task`` field (color / direction / ...), else its
problem_type. Multiple choice by letter, ``numerical`` by exact value (2 decimals), ``regression`` by MRA.
Overall = micro average over items.

``videor1`` — Video-R1's eval files (HF ``Video-R1/Video-R1-eval``: ``eval_vsibench.json``, ``eval_mmvu.json``,
...; spec §6.2). Video-R1's ``eval_bench.py`` reports ``mean_acc`` over non-regression items and ``mean_mra`` over
regression items; a benchmark with both (VSI-Bench) scores ``(mean_acc + mean_mra) / 2`` (maintainer, Video-R1
issue #121), otherwise the one present. Per-task = problem_type.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from veripo.data.schema import Sample
from veripo.eval.benchmarks import BenchmarkAdapter, ItemScore, mean, register


class _SampleSchemaAdapter(BenchmarkAdapter):
    video_hint = "the row's path, relative to --video-dir (default: the annotation file's folder)"

    def flatten(self, rec, file):
        row = dict(rec)
        row.setdefault("_base_dir", str(file.parent))
        return [row]

    def _sample(self, row: dict[str, Any]) -> Sample:
        clean = {k: v for k, v in row.items() if not k.startswith("_") and k != "response"}
        return Sample.from_dict(clean, base_dir=None)

    def item_id(self, row):
        return str(row.get("problem_id"))

    def task_of(self, row):
        return str(row.get("task") or row.get("problem_type"))

    def _build(self, row):
        s = self._sample(row)
        return {"problem": s.problem, "problem_type": s.problem_type, "solution": s.answer, "options": s.options}

    def video_candidates(self, row, video_dir: Path):
        p = Path(str(row.get("path") or ""))
        if p.is_absolute():
            return [p]
        base = Path(row.get("_base_dir") or ".")
        return [video_dir / p, base / p]

    def to_sample(self, row, video_dir=None):
        s = self._sample(row)
        s.problem_id = f"{self.name}:{s.problem_id}"
        s.extra = {**s.extra, "task": self.task_of(row), "benchmark": self.name}
        if s.data_type == "video":
            base = video_dir if video_dir is not None else row.get("_base_dir", ".")
            s.path = str(self.find_video(row, base))
        return s


@register
class Synthetic(_SampleSchemaAdapter):
    name = "synthetic"
    title = "Synthetic video reasoning (held-out split)"
    annotation_hint = "test.jsonl written by `veripo data synth --out DIR`"
    scorer_reference = "veripo.rewards accuracy rules: letter / exact number / MRA"


@register
class VideoR1Eval(_SampleSchemaAdapter):
    name = "videor1"
    title = "Video-R1 eval files (Video-R1-eval)"
    annotation_hint = "eval_<bench>.json from Video-R1-eval"
    scorer_reference = "Video-R1 src/eval_bench.py; VSI = (mean_acc + mean_mra)/2 (issue #121)"
    aggregation = "(mean_acc over non-regression + mean_mra over regression) / 2 when both exist"

    def task_of(self, row):
        return str(row.get("problem_type"))

    def overall(self, items: list[ItemScore], attr: str = "score") -> float:
        acc = [getattr(it, attr) for it in items if it.kind != "mra"]
        mra = [getattr(it, attr) for it in items if it.kind == "mra"]
        if acc and mra:
            return (mean(acc) + mean(mra)) / 2
        return mean(acc or mra)
