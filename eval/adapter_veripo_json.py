"""VerIPO's own evaluation files (HITsz-TMG/VerIPO ``evaluation/json/{vsi_bench,mmvu,tomato,video_mme,lvbench}.json``,
spec/veripo-method.md §6.1), read as published and scored with VerIPO's ``evaluation/calculate_score.py``.

    veripo eval run   --benchmark veripo_json --annotations evaluation/json/vsi_bench.json --video-dir DATA/ ...
    veripo eval score --benchmark veripo_json:vsi_bench --predictions preds.jsonl

Each file is a JSON list of ``{question_id, video_path, question, answer, processed_question[, options,
scene_name]}``. VSI-Bench 5130 items (2490 MC / 2640 numeric), MMVU 625 (its MC subset), TOMATO 1484, LVBench
1549, Video-MME 2700 (w/o subtitles).

Which benchmark (``subset``) a row belongs to matters for numeric answers only (MRA on VSI-Bench, a math
check elsewhere: calculate_score.py tests ``"vsi_bench" in pred_path``). It is taken from, in order:
``--benchmark veripo_json:<subset>``; the row's ``veripo_subset`` field (``veripo eval run`` writes it into
every prediction); the file's name (``vsi_bench.json``, ``vsi_bench_preds.jsonl`` -> ``vsi_bench``; also
``vsibench``, ``videomme``). A row with none of these is scored like calculate_score.py scores a file whose
path does not say ``vsi_bench``.

Prompt: ``processed_question`` (else ``question``) minus its trailing "Answer with the option's letter from the
given choices directly." — VerIPO's ``evaluation_vllm.py`` strips that line before wrapping the question in
its template — then the project's prompt (:func:`veripo.prompts.question_text`) adds the instruction; with
``--prompt direct`` the text is ``processed_question`` exactly. Options stay inline as published (the
sample's ``options`` list is left empty, so they are not repeated). Multiple choice when
``answer.isalpha()`` (VerIPO's template choice), numeric otherwise (``regression`` on VSI-Bench).

Videos: ``{video_dir}/{video_path}`` (e.g. ``DATA/VSI-Bench/arkitscenes/41069025.mp4``), else the path
without its first folder, else the file name directly under ``--video-dir``.

Scores: ``strict`` (default) = calculate_score.py bit for bit (:mod:`veripo.eval.veripo_scoring`); ``lenient``
= the harness's lenient rules on the same items (one committed option letter; first number anywhere in the
answer; see :mod:`veripo.eval.scoring`). Overall = sum of item scores / N. Per task: multiple choice vs
numeric; groups: ``subset`` and ``video_folder`` (the folder holding the video: VSI-Bench's arkitscenes /
scannet / scannetpp, MMVU's subject, TOMATO's human / object / simulated). ``math_check`` in the results
names the check used on non-VSI numeric items (math_verify, or the documented fallback when it is missing).
"""
from __future__ import annotations

import copy
from pathlib import Path, PurePosixPath
from typing import Any

from veripo.errors import DataError
from veripo.eval.adapters_mc import split_inline_options
from veripo.eval.benchmarks import BenchmarkAdapter, ItemScore, register, require
from veripo.eval.scoring import DEFAULT_MATCH, pick, score_mra, score_multiple_choice, score_numeric_exact
from veripo.eval.veripo_scoring import MATH_CHECK, is_veripo_mc, veripo_item_score

SUBSETS = ("vsi_bench", "mmvu", "tomato", "video_mme", "lvbench")
SUBSET_KEY = "veripo_subset"
DIRECT_SUFFIX = "Answer with the option's letter from the given choices directly."


def subset_from_name(name: str) -> str | None:
    """``"vsi_bench_preds.jsonl"`` -> ``"vsi_bench"``; ``None`` when the name names no VerIPO file."""
    squashed = name.lower().replace("-", "").replace("_", "")
    for subset in SUBSETS:
        if subset.replace("_", "") in squashed:
            return subset
    return None


@register
class VerIPOJson(BenchmarkAdapter):
    name = "veripo_json"
    title = "VerIPO's evaluation files (evaluation/json/*.json), VerIPO's calculate_score.py"
    annotation_hint = ("evaluation/json/<vsi_bench|mmvu|tomato|video_mme|lvbench>.json from HITsz-TMG/VerIPO "
                       "(benchmark from the file name, or --benchmark veripo_json:<name>)")
    video_hint = "{video_dir}/{video_path} (e.g. {video_dir}/VSI-Bench/arkitscenes/41069025.mp4)"
    scorer_reference = ("HITsz-TMG/VerIPO evaluation/calculate_score.py: letter rule a-j, MRA on vsi_bench, "
                        "math check elsewhere")
    aggregation = "sum of item scores / N (micro average), as calculate_score.py"
    subset: str | None = None  # set by variant(): overrides the row's field and the file name

    def variant(self, name: str) -> "VerIPOJson":
        subset = subset_from_name(name)
        if subset is None or subset.replace("_", "") != name.lower().replace("-", "").replace("_", ""):
            raise DataError(f"veripo_json has no benchmark {name!r}; choose from: {', '.join(SUBSETS)}")
        new = copy.copy(self)
        new.subset = subset
        return new

    def flatten(self, rec, file):
        row = dict(rec)
        row[SUBSET_KEY] = self.subset or row.get(SUBSET_KEY) or subset_from_name(Path(file).name)
        return [row]

    def item_id(self, row):
        qid = str(row.get("question_id"))
        sub = row.get(SUBSET_KEY)
        return f"{sub}/{qid}" if sub and not qid.startswith(sub) else qid

    def _gold(self, row) -> str:
        return str(row.get("answer"))

    def task_of(self, row):
        return "multiple choice" if is_veripo_mc(self._gold(row)) else "numeric"

    def groups_of(self, row):
        folder = PurePosixPath(str(row.get("video_path") or "")).parent.name
        out = {"subset": str(row.get(SUBSET_KEY) or "unknown")}
        if folder:
            out["video_folder"] = folder
        return out

    def _build(self, row: dict[str, Any]) -> dict[str, Any]:
        require(row, "question_id", "video_path", "answer")
        text = str(row.get("processed_question") or row.get("question") or "").strip()
        if not text:
            raise ValueError("missing field(s): processed_question, question")
        problem = text[: -len(DIRECT_SUFFIX)].rstrip() if text.endswith(DIRECT_SUFFIX) else text
        gold = self._gold(row)
        if gold.isalpha():
            options = [str(o) for o in (row.get("options") or [])] or split_inline_options(problem)[1]
            return {"problem": problem, "problem_type": "multiple choice", "solution": gold, "options": options}
        ptype = "regression" if row.get(SUBSET_KEY) == "vsi_bench" else "numerical"
        return {"problem": problem, "problem_type": ptype, "solution": gold, "options": []}

    def to_sample(self, row, video_dir=None):
        sample = super().to_sample(row, video_dir)
        sample.options = []  # inline in processed_question already: shown once, as VerIPO shows them
        return sample

    def video_candidates(self, row, video_dir: Path):
        rel = PurePosixPath(str(row.get("video_path")))
        if rel.is_absolute():
            return [Path(rel)]
        tail = PurePosixPath(*rel.parts[1:]) if len(rel.parts) > 1 else rel
        return [video_dir / rel, video_dir / tail, video_dir / rel.name]

    def score_row(self, row: dict[str, Any], response: str | None, match: str = DEFAULT_MATCH) -> ItemScore:
        fields = self._build(row)
        gold = self._gold(row)
        vsi = row.get(SUBSET_KEY) == "vsi_bench"
        kind, pred, strict = veripo_item_score(response, gold, vsi)
        if kind == "mc":
            lenient = score_multiple_choice(response, gold, fields["options"])[2]
        elif kind == "mra":
            try:
                lenient = score_mra(response, float(gold.strip("$").strip()))[2]
            except ValueError:
                lenient = 0.0
        else:
            lenient = score_numeric_exact(response, gold)[2]
        return ItemScore(item_id=self.item_id(row), task=self.task_of(row), kind=kind, gold=gold, pred=pred,
                         score=pick(strict, lenient, match), score_strict=strict, score_lenient=lenient,
                         groups=self.groups_of(row))

    def aggregate(self, items: list[ItemScore], match: str = DEFAULT_MATCH) -> dict[str, Any]:
        out = super().aggregate(items, match)
        if any(it.kind == "numeric" for it in items):
            out["math_check"] = MATH_CHECK
        return out
