"""``--match official``: each benchmark scored exactly as lmms-eval 0.7.3's own task code scores it.

Per item: the response is first reduced as lmms-eval's ``parse_reasoning_model_answer`` does
(:func:`veripo.eval.lmms_rules.reduce_reasoning`), then read by the task's own rule
(:mod:`veripo.eval.lmms_rules`, :mod:`veripo.eval.lmms_rules_open`). Per benchmark: the task's own
denominators, groupings, rounding and floating point. Every number is a fraction in [0, 1] (lmms-eval logs
most as percentages): ``overall``, ``tasks.<name>`` and ``groups.<grouping>.<name>``, each ``{"score", "n"}``
with ``n`` the items in that number's denominator.

===========  ===================================================================================================
benchmark    lmms-eval 0.7.3 (``lmms_eval/tasks/<task>/utils.py``) -> what the result holds
===========  ===================================================================================================
vsibench     ``vsibench_process_results`` / ``_compute_all_subscores``: letter = first space-separated token;
             numbers by ``extract_number`` + float MRA; per-type means, rel_direction easy/medium/hard merged
             (mean of the three), overall = mean of the 8 task scores; each rounded to 6 decimals
videomme     ``extract_mcq_answer`` (A–D) == answer; overall micro; ``tasks`` = task_type, ``groups`` =
             duration / domain / sub_category, each name counting the items whose
             ``duration_domain_sub_category_task_type`` key contains it (the reference's substring test)
mmvu         ``evaluate_with_rule_based`` (multiple choice); denominator = items whose video folder is one of
             the 27 subjects of its TASK_MAP; ``groups.category`` = its 4 categories. Open-ended questions as in
             the other modes (skipped and counted, or the ``--judge-url`` judge, reported apart)
tomato       ``parse_multi_choice_response`` (no GPT parser); micro; ``tasks`` = reason_type,
             ``groups.demonstration_type``
lvbench      ``extract_mcq_answer`` (A–D) == answer; micro (lmms-eval computes no breakdown)
videommmu    MMMU parsing (``extract_mcq_answer`` over the options' letters, else ``parse_open_response``);
             empty open answers ("API Error") left out; accuracy per subject, weighted by size into the
             overall and each domain, rounded to 5 decimals; ``tasks`` = track (the same computation per track)
mvbench     ``mcq_acc``; empty answers left out of each task's denominator; ``tasks`` = the 20 tasks;
             overall = mean of the task scores (lmms-eval's mvbench group reports none; this is the
             leaderboard's average)
tempcompass  multi-choice / yes_no / caption_matching rules, the format read per row from ``task_type``;
             a reply the rules cannot read goes to lmms-eval's ChatGPT judge, which without a reachable judge
             scores 0 — so here 0, or the ``--judge-url`` judge's verdict; micro; ``tasks`` = dimension,
             ``groups.task_type`` = the format (each format is its own lmms-eval task)
===========  ===================================================================================================

Where lmms-eval 0.7.3's code would stop (a VSI-Bench gold of 0, a Video-MME category it does not list, a
VideoMMMU id without its subject, a caption_matching row without ``Label: sentence`` lines), the row is
reported as malformed instead. lmms-eval is never imported here.
"""
from __future__ import annotations

import dataclasses
import re
import string
from collections import defaultdict
from typing import Any, Callable

from veripo.errors import DataError
from veripo.eval import lmms_rules as R
from veripo.eval import lmms_rules_open as O
from veripo.eval.scoring import ItemScore

LMMS_EVAL_VERSION = "0.7.3"
OFFICIAL = "official"


def _ref(task: str, what: str) -> str:
    return f"lmms-eval {LMMS_EVAL_VERSION} lmms_eval/tasks/{task}/utils.py ({what})"


@dataclasses.dataclass(frozen=True)
class OfficialScorer:
    reference: str
    item: Callable[[Any, dict[str, Any], str], dict[str, Any]]  # (adapter, row, reduced answer) -> fields
    aggregate: Callable[[list[ItemScore]], dict[str, Any]]  # -> {"overall", "tasks", "groups"}
    judged: bool = False  # some items go to lmms-eval's LLM judge (TempCompass)


def _cell(num: float, n: int) -> dict[str, Any]:
    return {"score": num, "n": n}


def _micro(items: list[ItemScore]) -> dict[str, Any]:
    counted = [it for it in items if it.counted]
    return _cell(sum(it.score for it in counted) / len(counted) if counted else 0.0, len(counted))


def _by(items: list[ItemScore], key: Callable[[ItemScore], str | None]) -> dict[str, list[ItemScore]]:
    out: dict[str, list[ItemScore]] = defaultdict(list)
    for it in items:
        k = key(it)
        if k is not None:
            out[k].append(it)
    return dict(sorted(out.items()))


def _micro_result(items: list[ItemScore], groups: tuple[str, ...] = (), tasks: bool = True) -> dict[str, Any]:
    top = _micro(items)
    return {"overall": top["score"], "n_counted": top["n"],
            "tasks": {t: _micro(v) for t, v in _by(items, lambda it: it.task).items()} if tasks else {},
            "groups": {g: {k: _micro(v) for k, v in _by(items, lambda it, g=g: it.groups.get(g)).items()}
                       for g in groups}}


# ------------------------------------------------------------------ VSI-Bench

_REL_DIRECTION = ("object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard")


def _vsi_item(adapter, row, answer):
    from veripo.eval.adapter_vsibench import MCA_TYPES, NA_TYPES

    qtype, gold = row["question_type"], row["ground_truth"]
    if qtype in MCA_TYPES:
        return {"score": R.vsi_choice_correct(answer, str(gold)), "pred": answer.split(" ")[0].rstrip(".").strip()}
    if qtype in NA_TYPES:
        pred = R.vsi_number(answer)
        return {"score": R.vsi_mra(pred, R.vsi_gold_number(gold)), "pred": None if pred is None else repr(pred)}
    raise ValueError(f"unknown question_type {qtype!r}")


def _vsi_aggregate(items):
    per_type = {t: (sum(it.score for it in v) / len(v), len(v)) for t, v in _by(items, lambda it: it.task).items()}
    tasks = {t: s for t, s in per_type.items() if t not in _REL_DIRECTION}
    parts = [per_type[t] for t in _REL_DIRECTION if t in per_type]
    if parts:  # lmms-eval 0.7.3 needs all three present; with fewer this is the mean of those present
        tasks["object_rel_direction"] = (sum(s for s, _ in parts) / len(parts), sum(n for _, n in parts))
    overall = sum(s for s, _ in tasks.values()) / len(tasks) if tasks else 0.0
    return {"overall": round(overall, 6), "n_counted": len(items),
            "tasks": {t: _cell(round(s, 6), n) for t, (s, n) in sorted(tasks.items())}, "groups": {}}


# ------------------------------------------------------------------ Video-MME

VIDEOMME_DURATIONS = ("short", "medium", "long")
VIDEOMME_DOMAINS = ("Knowledge", "Film & Television", "Sports Competition", "Artistic Performance", "Life Record",
                    "Multilingual")
VIDEOMME_SUB_CATEGORIES = (
    "Humanity & History", "Literature & Art", "Biology & Medicine", "Finance & Commerce", "Astronomy", "Geography",
    "Law", "Life Tip", "Technology", "Animation", "Movie & TV Show", "Documentary", "News Report", "Esports",
    "Basketball", "Football", "Athletics", "Other Sports", "Stage Play", "Magic Show", "Variety Show", "Acrobatics",
    "Handicraft", "Food", "Fashion", "Daily Life", "Travel", "Pet & Animal", "Exercise", "Multilingual")
VIDEOMME_TASK_TYPES = ("Temporal Perception", "Spatial Perception", "Attribute Perception", "Action Recognition",
                       "Object Recognition", "OCR Problems", "Counting Problem", "Temporal Reasoning",
                       "Spatial Reasoning", "Action Reasoning", "Object Reasoning", "Information Synopsis")
_VIDEOMME_FIELDS = (("duration", VIDEOMME_DURATIONS), ("domain", VIDEOMME_DOMAINS),
                    ("sub_category", VIDEOMME_SUB_CATEGORIES), ("task_type", VIDEOMME_TASK_TYPES))


def _videomme_item(adapter, row, answer):
    for field, names in _VIDEOMME_FIELDS:
        if row.get(field) not in names:
            raise ValueError(f"{field} {row.get(field)!r} is not one lmms-eval 0.7.3's Video-MME lists "
                             "(its aggregation fails on it)")
    pred = R.mcq_letter(answer, ("A", "B", "C", "D"))
    key = "_".join(str(row[f]) for f, _ in _VIDEOMME_FIELDS)
    return {"score": float(pred == str(row["answer"])), "pred": pred,
            "groups": {"duration": row["duration"], "domain": row["domain"], "sub_category": row["sub_category"],
                       "_key": key}}


def _videomme_aggregate(items):
    def table(names):
        out = {}
        for name in names:
            hit = [it for it in items if name in it.groups["_key"]]
            if hit:
                out[name] = _micro(hit)
        return dict(sorted(out.items()))

    top = _micro(items)
    return {"overall": top["score"], "n_counted": top["n"], "tasks": table(VIDEOMME_TASK_TYPES),
            "groups": {"duration": table(VIDEOMME_DURATIONS), "domain": table(VIDEOMME_DOMAINS),
                       "sub_category": table(VIDEOMME_SUB_CATEGORIES)}}


# ------------------------------------------------------------------ MMVU

MMVU_CATEGORIES = {
    **dict.fromkeys(("Biology", "Chemistry", "Modern_Physics", "Astronomy", "Geography", "Materials_Science",
                     "Neurobiology", "Electromagnetism", "Thermodynamics", "Mechanics"), "Science"),
    **dict.fromkeys(("Civil_Engineering", "Electrical_Engineering", "Mechanical_Engineering",
                     "Biomedical_Engineering", "Electronics_and_Communication", "Computer_Science"), "Engineering"),
    **dict.fromkeys(("Clinical_Medicine", "Basic_Medicine", "Preventive_Medicine", "Pharmacy", "Dentistry"),
                    "Healthcare"),
    **dict.fromkeys(("Art", "Literature", "History", "Law", "Economics", "Management"),
                    "Humanities_and_Social_Science"),
}


def _mmvu_item(adapter, row, answer):
    path = str(row.get("video_path") or row.get("video") or "")
    if path.count("/") < 1:
        raise ValueError(f"video_path {path!r} has no subject folder (lmms-eval reads the category from it)")
    subject = path.split("/")[-2]
    choices = row.get("choices") if isinstance(row.get("choices"), dict) else {}
    correct = R.mmvu_mc_correct(answer, str(row["answer"]), choices)
    category = MMVU_CATEGORIES.get(subject)
    return {"score": float(correct), "pred": R.mmvu_logged_letter(answer), "counted": category is not None,
            "groups": {"category": category} if category else {}}


# ------------------------------------------------------------------ TOMATO / LVBench

def _tomato_item(adapter, row, answer):
    options = [str(o) for o in row["options"]]
    pred = R.tomato_letter(answer, options)
    reason = row.get("reason_type") or row.get("reasoning_type")
    demo = row.get("demonstration_type")
    if not reason or not demo:
        raise ValueError("TOMATO row needs reason_type (or its file name) and demonstration_type")
    return {"score": float(pred == chr(65 + int(row["answer"]))), "pred": pred, "task": str(reason),
            "groups": {"demonstration_type": str(demo)}}


def _lvbench_item(adapter, row, answer):
    pred = R.mcq_letter(answer, ("A", "B", "C", "D"))
    return {"score": float(pred == row["answer"]), "pred": pred}


# ------------------------------------------------------------------ VideoMMMU

VIDEOMMMU_DOMAINS = {
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
                            "Pharmacy", "Public_Health"),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                             "Energy_and_Power", "Materials", "Mechanical_Engineering"),
}


def _videommmu_subject(item_id: str) -> str:
    head = item_id.split("_")[0]
    try:
        m = re.search(rf"^{head}_(.+?)_\d+$", item_id)
    except re.error:
        m = None
    if not m:
        raise ValueError(f"id {item_id!r} has no <track>_<subject>_<n> form (lmms-eval's extract_subset_name fails)")
    return m.group(1)


def _videommmu_item(adapter, row, answer):
    qtype = row.get("question_type", "None")
    subject = _videommmu_subject(str(row["id"]))
    if qtype == "multiple-choice":
        letters = [chr(ord("A") + i) for i in range(len(row.get("options") or []))]
        pred: Any = R.mcq_letter(answer, letters) or "No Answer Found."
    else:
        pred = O.mmmu_open_parse(answer)
    counted = not (isinstance(pred, str) and pred == O.API_ERROR)
    if qtype in ("multiple-choice", "perception"):
        correct = O.mmmu_choice_correct(row["answer"], pred)
    else:
        correct = counted and O.mmmu_open_correct(row["answer"], pred)
    domain = next((d for d, subs in VIDEOMMMU_DOMAINS.items() if subject in subs), None)
    groups = {"subject": subject, **({"domain": domain} if domain else {})}
    return {"score": float(correct), "pred": pred if isinstance(pred, str) else repr(sorted(map(str, pred))),
            "counted": counted, "groups": groups}


def _videommmu_numbers(items: list[ItemScore]) -> tuple[float, dict, dict, int]:
    """(overall, per-subject cells, per-domain cells, n) as ``videommmu_aggregate_results`` computes them."""
    valid = [it for it in items if it.counted]
    per_subject = {s: (sum(it.score for it in v) / len(v), len(v))
                   for s, v in _by(valid, lambda it: it.groups["subject"]).items()}

    def weighted(cells):
        n = sum(c for _, c in cells)
        return sum(acc * c for acc, c in cells) / n if n else 0

    subjects = {s: _cell(round(acc, 5), n) for s, (acc, n) in per_subject.items()
                if any(s in subs for subs in VIDEOMMMU_DOMAINS.values())}
    domains = {}
    for domain, subs in VIDEOMMMU_DOMAINS.items():
        cells = [per_subject[s] for s in subs if s in per_subject]
        if cells:
            domains[domain] = _cell(round(weighted(cells), 5), sum(c for _, c in cells))
    overall = round(weighted(list(per_subject.values())), 5)
    return overall, subjects, dict(sorted(domains.items())), len(valid)


def _videommmu_aggregate(items):
    overall, subjects, domains, n = _videommmu_numbers(items)
    tasks = {}
    for track, its in _by(items, lambda it: it.task).items():
        acc, _, _, k = _videommmu_numbers(its)
        tasks[track] = _cell(acc, k)
    return {"overall": overall, "n_counted": n, "tasks": tasks, "groups": {"subject": subjects, "domain": domains}}


# ------------------------------------------------------------------ MVBench

def _mvbench_item(adapter, row, answer):
    cands = [str(c) for c in row["candidates"]]
    if str(row["answer"]) not in cands:
        raise ValueError(f"answer {row['answer']!r} is not one of the candidates")
    gold = string.ascii_uppercase[cands.index(str(row["answer"]))]
    return {"score": float(R.mvbench_correct(gold, answer)), "pred": answer, "counted": answer != ""}


def _mvbench_aggregate(items):
    tasks = {t: _micro(v) for t, v in _by(items, lambda it: it.task).items()}
    overall = sum(c["score"] for c in tasks.values()) / len(tasks) if tasks else 0.0
    return {"overall": overall, "n_counted": sum(c["n"] for c in tasks.values()), "tasks": tasks, "groups": {}}


# ------------------------------------------------------------------ TempCompass

def _tempcompass_item(adapter, row, answer):
    fmt = adapter.format_of(row)
    rating = O.tempcompass_rule(fmt, answer, str(row["question"]), str(row["answer"]))
    out: dict[str, Any] = {"score": float(rating or 0), "pred": answer, "groups": {"task_type": fmt}}
    if rating is None:  # lmms-eval asks its ChatGPT judge; unreachable -> 0
        out["judge_input"] = {"question": str(row["question"]), "gold": str(row["answer"]), "answer": answer}
    return out


SCORERS: dict[str, OfficialScorer] = {
    "vsibench": OfficialScorer(_ref("vsibench", "vsibench_process_results, _compute_all_subscores"), _vsi_item,
                               _vsi_aggregate),
    "videomme": OfficialScorer(_ref("videomme", "extract_mcq_answer A-D, videomme_aggregate_results"),
                               _videomme_item, _videomme_aggregate),
    "mmvu": OfficialScorer(_ref("mmvu", "evaluate_with_rule_based, mmvu_aggregate_results_val"), _mmvu_item,
                           lambda items: _micro_result(items, ("category",), tasks=False)),
    "tomato": OfficialScorer(_ref("tomato", "parse_multi_choice_response, tomato_aggregate_results"), _tomato_item,
                             lambda items: _micro_result(items, ("demonstration_type",))),
    "lvbench": OfficialScorer(_ref("lvbench", "extract_mcq_answer A-D, mean"), _lvbench_item,
                              lambda items: _micro_result(items, tasks=False)),
    "videommmu": OfficialScorer(_ref("videommmu", "MMMU parsing, videommmu_aggregate_results"), _videommmu_item,
                                _videommmu_aggregate),
    "mvbench": OfficialScorer(_ref("mvbench", "mcq_acc, mvbench_aggregate_results per task"), _mvbench_item,
                              _mvbench_aggregate),
    "tempcompass": OfficialScorer(_ref("tempcompass", "multi-choice / yes_no / caption_matching rules, "
                                       "tempcompass_aggregate_rating"), _tempcompass_item,
                                  lambda items: _micro_result(items, ("task_type",)), judged=True),
}


def official_scorer(name: str) -> OfficialScorer:
    """The lmms-eval scorer of a benchmark; ``DataError`` for one lmms-eval does not score."""
    if name not in SCORERS:
        raise DataError(f"--match official: benchmark {name!r} has no lmms-eval {LMMS_EVAL_VERSION} scorer "
                        f"(it applies to: {', '.join(sorted(SCORERS))}); use --match strict or lenient")
    return SCORERS[name]


def check_match(adapter, match: str) -> None:
    """Refuse (``DataError``, one line) a match mode that does not exist or a benchmark it cannot score."""
    from veripo.eval.scoring import MATCH_MODES

    if match not in MATCH_MODES:
        raise DataError(f"--match must be one of {', '.join(MATCH_MODES)}, got {match!r}")
    if match == OFFICIAL:
        official_scorer(adapter.name)


def score_official(adapter, row: dict[str, Any], response: str, base: ItemScore) -> ItemScore:
    """``base`` (the strict / lenient scores of the row) with the official score, prediction and groupings."""
    try:
        fields = official_scorer(adapter.name).item(adapter, row, R.reduce_reasoning(response))
    except (KeyError, TypeError, IndexError, AttributeError) as e:  # a field lmms-eval's rule needs is absent/odd
        why = f"{type(e).__name__}: {e}"
        raise ValueError(f"lmms-eval {LMMS_EVAL_VERSION}'s rule cannot read this row ({why})") from None
    return dataclasses.replace(base, score=fields["score"], pred=fields.get("pred"),
                               counted=fields.get("counted", True), task=fields.get("task", base.task), tasks=(),
                               groups=fields.get("groups", {}), judge_input=fields.get("judge_input"))


def aggregate_official(adapter, items: list[ItemScore]) -> dict[str, Any]:
    """``{"overall", "n_counted", "tasks", "groups", "reference"}`` of lmms-eval's aggregation."""
    scorer = official_scorer(adapter.name)
    out = scorer.aggregate(items)
    out["reference"] = scorer.reference
    if scorer.judged:
        out["n_judge_items"] = sum(1 for it in items if it.judge_input is not None)
    return out
