"""VSI-Bench (Yang et al. 2024, "Thinking in Space"; HF ``nyu-visionx/VSI-Bench``, ``test-00000-of-00001.parquet``).

Row fields as released: ``id, dataset, scene_name, question_type, question, options, ground_truth``.
Videos: ``{video_dir}/{dataset}/{scene_name}.mp4`` (arkitscenes / scannet / scannetpp).

Scoring follows the structure of the lmms-eval task (``lmms_eval/tasks/vsibench/utils.py``; ``--match official`` is
its exact rule, :mod:`veripo.eval.official`):

* multiple-choice answer (MCA) types — object_rel_direction_{easy,medium,hard}, object_rel_distance,
  route_planning, obj_appearance_order — are right/wrong by option letter;
* numerical answer (NA) types — object_abs_distance, object_counting, object_size_estimation,
  room_size_estimation — score MRA over θ ∈ {0.50, …, 0.95} (see :mod:`veripo.eval.scoring`).

Overall (lmms-eval's aggregation, in every match mode): the mean of the per-type means, after the three
rel_direction difficulties are merged into one ``object_rel_direction`` score (the mean of their three means) — 8 task scores, **not** a mean over items.
VerIPO's own ``calculate_score.py`` micro-averages items instead (spec §6.1); that number is reported as
``overall_micro`` for comparison.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from veripo.eval.benchmarks import BenchmarkAdapter, ItemScore, mean, per_task, register, require

MCA_TYPES = ("object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard",
             "object_rel_distance", "route_planning", "obj_appearance_order")
NA_TYPES = ("object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation")
REL_DIRECTION = "object_rel_direction"


def merged_task_scores(per_type: dict[str, float]) -> dict[str, float]:
    """Per-type means -> the 8 official task scores (rel_direction easy/medium/hard averaged into one)."""
    out = {t: s for t, s in per_type.items() if not t.startswith(REL_DIRECTION + "_")}
    parts = [s for t, s in per_type.items() if t.startswith(REL_DIRECTION + "_")]
    if parts:
        out[REL_DIRECTION] = mean(parts)
    return out


@register
class VSIBench(BenchmarkAdapter):
    name = "vsibench"
    title = "VSI-Bench"
    annotation_hint = "test-00000-of-00001.parquet (or the same rows as JSON/JSONL)"
    video_hint = "{video_dir}/{dataset}/{scene_name}.mp4"
    scorer_reference = ("the structure of lmms-eval tasks/vsibench/utils.py: letter for MCA, MRA .5:.95:.05 for NA "
                        "(here rounded thresholds, so an error of exactly 0.2 passes 0.8; --match official is its "
                        "floating-point rule)")
    aggregation = "mean of 8 task-type scores (rel_direction easy/medium/hard merged first)"

    def item_id(self, row: dict[str, Any]) -> str:
        return str(row.get("id"))

    def task_of(self, row: dict[str, Any]) -> str:
        return str(row.get("question_type"))

    def _build(self, row: dict[str, Any]) -> dict[str, Any]:
        require(row, "id", "question_type", "question", "ground_truth")
        qtype = row["question_type"]
        if qtype in MCA_TYPES:
            options = row.get("options")
            if not options:
                raise ValueError(f"multiple-choice question type {qtype} has no options")
            return {"problem": row["question"], "problem_type": "multiple choice",
                    "solution": str(row["ground_truth"]).strip(), "options": [str(o) for o in options]}
        if qtype in NA_TYPES:
            try:
                float(row["ground_truth"])
            except (TypeError, ValueError):
                raise ValueError(f"ground_truth {row['ground_truth']!r} of a numeric question is not a number") from None
            return {"problem": row["question"], "problem_type": "regression", "solution": str(row["ground_truth"])}
        raise ValueError(f"unknown question_type {qtype!r}")

    def video_candidates(self, row: dict[str, Any], video_dir: Path) -> list[Path]:
        scene = str(row.get("scene_name"))
        return [video_dir / str(row.get("dataset")) / f"{scene}.mp4", video_dir / f"{scene}.mp4"]

    def overall(self, items: list[ItemScore], attr: str = "score") -> float:
        per_type = {t: v["score"] for t, v in per_task(items, attr).items()}
        return mean(merged_task_scores(per_type).values())

    def aggregate(self, items: list[ItemScore], match: str = "strict") -> dict[str, Any]:
        out = super().aggregate(items, match)
        if match == "official":
            return out  # lmms-eval's own numbers only
        out["overall_micro"] = mean(it.score for it in items)
        merged = merged_task_scores({t: v["score"] for t, v in out["tasks"].items()})
        out["task_scores_official"] = dict(sorted(merged.items()))
        return out
