"""Adapters for the all-multiple-choice video benchmarks, each reading its release as published.

===========  =====================================================  ==========================================
benchmark    --annotations (as released)                            task breakdown / overall
===========  =====================================================  ==========================================
videomme     ``videomme/test-00000-of-00001.parquet`` (lmms-lab)    task_type (+ duration, domain); micro
mmvu         ``validation.json`` (yale-nlp/MMVU); MC subset, or     subject; micro (MC); open-ended
             all questions with ``--judge-url`` (LLM judge)         accuracy and all-questions reported apart
tomato       ``data/`` folder or one ``data/<type>.json``           reasoning type (file name); micro
lvbench      ``video_info.meta.jsonl`` (THUDM/LVBench)              each of a question's question_type; micro
videommmu    ``<Track>/test-*.parquet`` (Perception/Comprehension/  track; micro
             Adaptation), a folder of them, or JSON/JSONL rows
mvbench      ``json/`` folder or one ``json/<task>.json``           task (file name); mean of task means
tempcompass  ``questions/{multi-choice,yes_no,caption_matching}``   dimension (+ task_type); micro
             ``.json`` (the format from the file name) or flat rows
===========  =====================================================  ==========================================

Reference scorers (read for reference, not copied). ``--match strict`` / ``lenient`` score every benchmark by
option letter with veripo's two letter rules (:mod:`veripo.eval.scoring`) and each benchmark's own denominator
and averaging, as listed by ``scorer_reference``; ``--match official`` is lmms-eval 0.7.3's own scorer for each
of these benchmarks (:mod:`veripo.eval.official`: its answer extraction, empty-answer handling, denominators
and rounding). MMVU's open-ended questions need an LLM judge: left out (skipped and counted, as in Video-R1's
and VerIPO's MC subsets) unless ``--judge-url`` names an OpenAI-compatible judge; then they are run too and
judged CORRECT / INCORRECT against the gold answer and reported apart (:mod:`veripo.eval.open_ended`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from veripo.eval.benchmarks import (LETTERS, BenchmarkAdapter, ItemScore, letter_options, mean, per_task, register,
                                    require, short_hash)
from veripo.eval.scoring import DEFAULT_MATCH

_OPTION_LINE_RE = re.compile(r"^\s*\(?([A-J])[.)]\s*(.*)$")


def split_inline_options(text: str) -> tuple[str, list[str]]:
    """A question with its options inline (``"...?\\n(A) x\\n(B) y"`` or ``"...?\\nA. x\\nB. y"``) ->
    ``("...?", ["A. x", "B. y"])``."""
    stem: list[str] = []
    options: list[str] = []
    for line in str(text).splitlines():
        m = _OPTION_LINE_RE.match(line)
        if m and (options or stem) and m.group(1) == LETTERS[len(options)]:
            options.append(f"{m.group(1)}. {m.group(2).strip()}")
        elif options:
            options[-1] += " " + line.strip()  # an option wrapped over two lines
        else:
            stem.append(line)
    return "\n".join(stem).strip(), options


def leading_letter(text: Any) -> str | None:
    m = re.match(r"^\s*\(?([A-J])(?:[.):]|\s|$)", str(text))
    return m.group(1) if m else None


def _mc(problem: str, options: list[str], gold: str) -> dict[str, Any]:
    if not options:
        raise ValueError("no options")
    letter = gold.strip().upper()
    if len(letter) != 1 or letter not in LETTERS[:len(options)]:
        raise ValueError(f"answer {gold!r} is not one of the option letters {LETTERS[:len(options)]}")
    return {"problem": str(problem).strip(), "problem_type": "multiple choice", "solution": letter,
            "options": options}


@register
class VideoMME(BenchmarkAdapter):
    name = "videomme"
    title = "Video-MME (w/o subtitles)"
    annotation_hint = "videomme/test-00000-of-00001.parquet"
    video_hint = "{video_dir}/{videoID}.mp4 (or {video_dir}/data/{videoID}.mp4)"
    scorer_reference = ("micro accuracy by option letter, as the Video-MME authors' eval script and lmms-eval "
                        "<= 0.6.1 (both read the first A-D letter; 0.7.3's extract_mcq_answer is --match official)")

    def item_id(self, row):
        return str(row.get("question_id"))

    def task_of(self, row):
        return str(row.get("task_type") or "all")

    def groups_of(self, row):
        return {k: str(row[k]) for k in ("duration", "domain") if row.get(k)}

    def _build(self, row):
        require(row, "question_id", "question", "options", "answer")
        opts = [str(o) for o in row["options"]]
        if not all(leading_letter(o) for o in opts):
            opts = letter_options(opts)
        return _mc(row["question"], opts, str(row["answer"]))

    def video_candidates(self, row, video_dir: Path):
        vid = str(row.get("videoID") or row.get("video_id"))
        return [video_dir / f"{vid}.mp4", video_dir / "data" / f"{vid}.mp4"]


@register
class MMVU(BenchmarkAdapter):
    name = "mmvu"
    title = "MMVU (multiple-choice subset)"
    annotation_hint = "validation.json"
    video_hint = "{video_dir}/<path after 'videos/' in the row's video URL>, e.g. {video_dir}/Art/0.mp4"
    scorer_reference = ("micro accuracy by option letter over the multiple-choice questions (lmms-eval's "
                        "evaluate_with_rule_based is --match official); open-ended: only with --judge-url (LLM "
                        "judge, reported apart)")
    has_open_ended = True

    def is_open_ended(self, row):
        return row.get("question_type") not in (None, "multiple-choice")

    def _collect(self, where, rec, file, out, errors):
        if isinstance(rec, dict) and self.is_open_ended(rec) and not self.open_ended:
            if errors is not None:
                errors.append(f"{where}: skipped: {rec.get('question_type')} question (MC subset only; "
                              "--judge-url scores them with an LLM judge)")
            return
        super()._collect(where, rec, file, out, errors)

    def open_ended_input(self, row):
        require(row, "id", "question", "answer")
        return str(row["question"]).strip(), str(row["answer"]).strip()

    def score_row(self, row, response, match=DEFAULT_MATCH):
        if self.is_open_ended(row):
            raise ValueError(f"{row.get('question_type')} question: only an LLM judge scores it (--judge-url)")
        return super().score_row(row, response, match)

    def item_id(self, row):
        return str(row.get("id"))

    def task_of(self, row):
        meta = row.get("metadata") or {}
        return str(meta.get("subject") or row.get("subject") or self._video_rel(row).split("/")[0] or "all")

    def _build(self, row):
        if self.is_open_ended(row) and self.open_ended:
            question, gold = self.open_ended_input(row)
            return {"problem": question, "problem_type": "free-form", "solution": gold}
        require(row, "id", "question", "choices", "answer")
        choices = row["choices"]
        if not isinstance(choices, dict):
            raise ValueError("choices must be an object {letter: text}")
        opts = [f"{k}. {str(v).strip()}" for k, v in sorted(choices.items()) if str(v or "").strip()]
        return _mc(row["question"], opts, str(row["answer"]))

    @staticmethod
    def _video_rel(row) -> str:
        src = str(row.get("video_path") or row.get("video") or "")
        return src.split("videos/", 1)[1] if "videos/" in src else src.rsplit("/", 1)[-1]

    def video_candidates(self, row, video_dir: Path):
        rel = self._video_rel(row)
        return [video_dir / rel, video_dir / "videos" / rel, video_dir / Path(rel).name]


@register
class TOMATO(BenchmarkAdapter):
    name = "tomato"
    title = "TOMATO"
    annotation_hint = "data/ (all six <reasoning_type>.json files) or one of them"
    video_hint = "{video_dir}/{demonstration_type}/{key}.mp4 (or {video_dir}/{key}.mp4)"
    scorer_reference = ("yale-nlp/TOMATO src/get_categorized_score.py (formerly src/get_score.py): micro accuracy "
                        "over all items, per reason type and demonstration type")

    def flatten(self, rec, file):
        row = dict(rec)
        row.setdefault("id", row.pop("_key", None))
        row.pop("_key", None)
        row.setdefault("reasoning_type", file.stem)
        return [row]

    def item_id(self, row):
        return f"{row.get('reasoning_type')}-{row.get('id')}"

    def task_of(self, row):
        return str(row.get("reasoning_type") or row.get("motion_type"))

    def groups_of(self, row):
        return {"demonstration_type": str(row["demonstration_type"])} if row.get("demonstration_type") else {}

    def _build(self, row):
        require(row, "question", "options", "key")
        if not isinstance(row.get("answer"), int) or isinstance(row.get("answer"), bool):
            raise ValueError(f"answer must be the option index (int), got {row.get('answer')!r}")
        opts = letter_options(row["options"])
        if not 0 <= row["answer"] < len(opts):
            raise ValueError(f"answer index {row['answer']} out of range for {len(opts)} options")
        return _mc(row["question"], opts, LETTERS[row["answer"]])

    def video_candidates(self, row, video_dir: Path):
        key = str(row.get("key"))
        return [video_dir / str(row.get("demonstration_type")) / f"{key}.mp4", video_dir / f"{key}.mp4"]


@register
class LVBench(BenchmarkAdapter):
    name = "lvbench"
    title = "LVBench"
    annotation_hint = "video_info.meta.jsonl"
    video_hint = "{video_dir}/{key}.mp4"
    scorer_reference = "THUDM/LVBench lvbench/metrics/compute_accuracy.py (a question counts toward each of its types)"
    aggregation = "micro average over questions; a question counts toward each of its question_type labels"

    def flatten(self, rec, file):
        if "qa" not in rec:
            return [rec]  # already a flat row (e.g. a prediction file)
        if not isinstance(rec["qa"], list):
            raise ValueError("qa must be a list")
        return [dict(qa, key=rec.get("key"), video_type=rec.get("type")) for qa in rec["qa"] if isinstance(qa, dict)]

    def _collect(self, where, rec, file, out, errors):
        try:
            super()._collect(where, rec, file, out, errors)
        except ValueError as e:
            if errors is None:
                raise
            errors.append(f"{where}: {e}")

    def item_id(self, row):
        return str(row.get("uid"))

    def _types(self, row) -> tuple[str, ...]:
        qt = row.get("question_type") or []
        return tuple(str(t) for t in ([qt] if isinstance(qt, str) else qt))

    def task_of(self, row):
        types = self._types(row)
        return types[0] if types else "all"

    def tasks_of(self, row):
        return self._types(row)

    def _build(self, row):
        require(row, "uid", "question", "answer", "key")
        stem, opts = split_inline_options(row["question"])
        return _mc(stem, opts, str(row["answer"]))

    def video_candidates(self, row, video_dir: Path):
        key = str(row.get("key"))
        return [video_dir / f"{key}.mp4", video_dir / "videos" / f"{key}.mp4"]


_VIDEOMMMU_TRACKS = ("Perception", "Comprehension", "Adaptation")


@register
class VideoMMMU(BenchmarkAdapter):
    name = "videommmu"
    title = "VideoMMMU"
    annotation_hint = "<Track>/test-00000-of-00001.parquet for each track, or their parent folder"
    video_hint = "{video_dir}/{id}.mp4 (or {video_dir}/{track}/{id}.mp4, {video_dir}/question_only/{id}_image.mp4)"
    scorer_reference = ("micro accuracy; letters by veripo's rules, open answers = the gold after normalisation "
                        "(lmms-eval's MMMU parsing is --match official)")

    def read_rows(self, path, errors=None):
        path = Path(path)
        if path.is_dir():
            subdirs = [path / t for t in _VIDEOMMMU_TRACKS if (path / t).is_dir()]
            if subdirs:
                return [r for d in subdirs for r in BenchmarkAdapter.read_rows(self, d, errors)]
        return super().read_rows(path, errors)

    def flatten(self, rec, file):
        row = dict(rec)
        if not row.get("track"):
            names = {n.lower(): n for n in _VIDEOMMMU_TRACKS}
            for candidate in (file.parent.name, file.stem.split("-")[0], str(row.get("id", "")).split("_")[0]):
                if candidate.lower() in names:
                    row["track"] = names[candidate.lower()]
                    break
        return [row]

    def item_id(self, row):
        return str(row.get("id"))

    def task_of(self, row):
        return str(row.get("track") or "all")

    def groups_of(self, row):
        parts = str(row.get("id", "")).split("_")
        return {"subject": "_".join(parts[1:-1])} if len(parts) > 2 else {}

    def _build(self, row):
        require(row, "id", "question", "answer")
        qtype = str(row.get("question_type") or "multiple-choice")
        if qtype == "multiple-choice":
            opts = [str(o) for o in (row.get("options") or [])]
            if not all(leading_letter(o) for o in opts):
                opts = letter_options(opts)
            return _mc(row["question"], opts, str(row["answer"]))
        return {"problem": str(row["question"]), "problem_type": "free-form", "solution": str(row["answer"])}

    def video_candidates(self, row, video_dir: Path):
        vid = str(row.get("id"))
        return [video_dir / f"{vid}.mp4", video_dir / str(row.get("track")) / f"{vid}.mp4",
                video_dir / "question_only" / f"{vid}_image.mp4"]


# MVBench task -> video folder of the release (OpenGVLab/MVBench ``video/``), a fact about the data layout.
MVBENCH_VIDEO_FOLDERS = {
    "object_interaction": "star/Charades_segment", "action_sequence": "star/Charades_segment",
    "action_prediction": "star/Charades_segment", "action_localization": "sta/sta_video_segment",
    "moving_count": "clevrer/video_validation", "fine_grained_pose": "nturgbd_convert",
    "character_order": "perception/videos", "object_shuffle": "perception/videos",
    "egocentric_navigation": "vlnqa", "moving_direction": "clevrer/video_validation",
    "episodic_reasoning": "tvqa/video_fps3_hq_segment", "fine_grained_action": "Moments_in_Time_Raw/videos",
    "scene_transition": "scene_qa/video", "state_change": "perception/videos",
    "moving_attribute": "clevrer/video_validation", "action_antonym": "ssv2_video_mp4",
    "unexpected_action": "FunQA_test/test", "counterfactual_inference": "clevrer/video_validation",
    "object_existence": "clevrer/video_validation", "action_count": "perception/videos",
}


@register
class MVBench(BenchmarkAdapter):
    name = "mvbench"
    title = "MVBench"
    annotation_hint = "json/ (the 20 <task>.json files) or one of them"
    video_hint = "{video_dir}/<task's release folder>/{video} (e.g. clevrer/video_validation/x.mp4) or {video_dir}/{video}"
    scorer_reference = ("OpenGVLab MVBench leaderboard: average of the 20 task accuracies, by option letter "
                        "(lmms-eval's mcq_acc, empty answers left out, is --match official)")
    aggregation = "mean of the per-task accuracies"

    def flatten(self, rec, file):
        row = dict(rec)
        row.setdefault("task", file.stem)
        return [row]

    def item_id(self, row):
        return f"{row.get('task')}/{short_hash(row.get('video'), row.get('question'), row.get('candidates'))}"

    def task_of(self, row):
        return str(row.get("task"))

    def _build(self, row):
        require(row, "video", "question", "candidates", "answer")
        cands = [str(c) for c in row["candidates"]]
        if str(row["answer"]) not in cands:
            raise ValueError(f"answer {row['answer']!r} is not one of the candidates")
        return _mc(row["question"], letter_options(cands), LETTERS[cands.index(str(row["answer"]))])

    def video_candidates(self, row, video_dir: Path):
        video = str(row.get("video"))
        folder = MVBENCH_VIDEO_FOLDERS.get(str(row.get("task")))
        return ([video_dir / folder / video] if folder else []) + [video_dir / video]

    def overall(self, items: list[ItemScore], attr: str = "score") -> float:
        return mean(v["score"] for v in per_task(items, attr).values())


_TEMPCOMPASS_FORMAT_NAMES = {"multi-choice": "multi-choice", "multi_choice": "multi-choice", "yes_no": "yes_no",
                             "caption_matching": "caption_matching", "captioning": "captioning"}
_CAPTION_OPTION_RE = re.compile(r"^\s*(?:Sentence|Caption|Option)\s+([A-J]|\d+)\s*:\s*(.*)$")


def _caption_letter(label: str) -> str:
    return LETTERS[int(label) - 1] if label.isdigit() else label


@register
class TempCompass(BenchmarkAdapter):
    name = "tempcompass"
    title = "TempCompass (multi-choice, yes_no, caption_matching)"
    annotation_hint = ("questions/{multi-choice,yes_no,caption_matching}.json ({video_id: {dimension: [{question, "
                       "answer}]}}; the format from the file name) or flat rows with task_type")
    video_hint = "{video_dir}/{video_id}.mp4"
    scorer_reference = ("llyx97/TempCompass eval_{multi-choice,yes_no,caption_matching}.py rule matching without "
                        "the ChatGPT fall-back (strict/lenient: letter rules; yes_no as a yes/no answer)")

    def flatten(self, rec, file):
        fmt = _TEMPCOMPASS_FORMAT_NAMES.get(file.stem) or _TEMPCOMPASS_FORMAT_NAMES.get(file.parent.name)
        if "question" in rec:
            return [rec if rec.get("task_type") or not fmt else dict(rec, task_type=fmt)]
        vid = rec.get("_key") or rec.get("video_id")
        rows = []
        for dim, qas in rec.items():
            if dim.startswith("_") or not isinstance(qas, list):
                continue
            rows += [dict(qa, video_id=vid, dim=dim, **({"task_type": fmt} if fmt else {}))
                     for qa in qas if isinstance(qa, dict)]
        return rows

    def format_of(self, row) -> str:
        """The row's format, from ``task_type`` (the dataset's config names); multi-choice when absent."""
        fmt = _TEMPCOMPASS_FORMAT_NAMES.get(str(row.get("task_type") or "multi-choice"))
        if fmt is None:
            raise ValueError(f"task_type {row.get('task_type')!r} is not one of multi-choice, yes_no, caption_matching")
        if fmt == "captioning":
            raise ValueError("task_type captioning is scored only by lmms-eval's LLM judge (not supported)")
        return fmt

    def item_id(self, row):
        fmt = self.format_of(row)
        prefix = "" if fmt == "multi-choice" else f"{fmt}/"
        return f"{prefix}{row.get('video_id')}/{row.get('dim')}/{short_hash(row.get('question'))}"

    def task_of(self, row):
        return str(row.get("dim"))

    def groups_of(self, row):
        return {"task_type": self.format_of(row)}

    def _build(self, row):
        require(row, "video_id", "question", "answer")
        fmt = self.format_of(row)
        if fmt == "yes_no":
            gold = str(row["answer"]).strip().lower()
            if gold not in ("yes", "no"):
                raise ValueError(f"yes_no answer {row['answer']!r} is not yes or no")
            return {"problem": str(row["question"]).strip(), "problem_type": "free-form", "solution": gold}
        if fmt == "caption_matching":
            lines = str(row["question"]).split("\n")
            opts = []
            for line in lines[1:]:
                m = _CAPTION_OPTION_RE.match(line)
                if not m:
                    raise ValueError(f"caption_matching option line {line!r} is not 'Sentence|Caption|Option X: text'")
                opts.append(f"{_caption_letter(m.group(1))}. {m.group(2).strip()}")
            m = _CAPTION_OPTION_RE.match(str(row["answer"]))
            if not m:
                raise ValueError(f"caption_matching answer {row['answer']!r} does not start with an option label")
            return _mc(lines[0], opts, _caption_letter(m.group(1)))
        stem, opts = split_inline_options(row["question"])
        gold = leading_letter(row["answer"])
        if gold is None:
            raise ValueError(f"answer {row['answer']!r} does not start with an option letter")
        return _mc(stem, opts, gold)

    def video_candidates(self, row, video_dir: Path):
        vid = str(row.get("video_id"))
        return [video_dir / f"{vid}.mp4", video_dir / "videos" / f"{vid}.mp4"]
