"""lmms-eval 0.7.3's rules for open answers (VideoMMMU) and TempCompass's three rule-scored formats, re-derived.

Companion of :mod:`veripo.eval.lmms_rules` (same contract: exact reproduction, lmms-eval never imported).

* :func:`mmmu_open_parse` / :func:`mmmu_open_correct` — ``tasks/videommmu/utils.py parse_open_response`` /
  ``eval_open``: the tail after the last "key" phrase of each sentence (``is``, ``so``, ``answer``, ...,
  ``=`` in the last sentence), plus every number in those tails, normalised (numbers rounded to 2 decimals,
  text lower-cased, a one-character text padded with a space); correct when a normalised gold string is a
  substring of a predicted string, or a gold number equals a predicted number. An empty reply parses to
  ``"API Error"``, which VideoMMMU's aggregation leaves out of the denominator.
* TempCompass (``tasks/tempcompass/utils.py``), per format; ``None`` = the hand-crafted rules failed, the
  item goes to lmms-eval's ChatGPT judge (with no judge reachable it scores 0 after the retries):
  :func:`tempcompass_multi_choice` (the reply is the answer, or its letter alone, or starts ``"X."`` /
  ``"X)"``), :func:`tempcompass_yes_no` (the reply starts with ``yes`` / ``no``, any case),
  :func:`tempcompass_caption_matching` (``eval_rule``: the reply equals an option line, an option sentence,
  or an option label such as ``"Sentence A"`` / ``"A"`` / ``"Option 1"``; the last such match counts).
"""
from __future__ import annotations

import re
from typing import Any

API_ERROR = "API Error"

_KEY_PHRASES = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ", "are ",
                "in total ", "total ", "identify ", "recognize ", "calculated as ", "counted as ", "measured as ",
                "observed as ", "concluded as ", "found to be ", "equals ", "determined to be ", "number of ",
                "value is ", "adds up to ", "have ", "has ")
_TRIVIAL = {":", ",", ".", "!", "?", ";", "'"}
_SENTENCE_SPLIT_RE = re.compile(r"\.\s(?=[A-Z])|\n")
_NUM_COMMAS_RE = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUM_SCI_RE = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUM_SIMPLE_RE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def mmmu_normalize(text: str) -> list[Any]:
    """``normalize_str``: ``[number rounded to 2 decimals]`` or ``[lower-case text]`` (a 1-char text padded)."""
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def _numbers(text: str) -> list[str]:
    return _NUM_COMMAS_RE.findall(text) + _NUM_SCI_RE.findall(text) + _NUM_SIMPLE_RE.findall(text)


def _key_tails(response: str) -> list[str]:
    low = response.strip().strip(".").lower()
    parts = _SENTENCE_SPLIT_RE.split(low)
    tails = []
    for i, part in enumerate(parts):
        phrases = _KEY_PHRASES + (("=",) if i == len(parts) - 1 else ())
        shortest = None
        for phrase in phrases:
            if phrase in part:
                tail = part.split(phrase)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL:
            tails.append(shortest)
    return tails or [low]


def mmmu_open_parse(response: str) -> list[Any] | str:
    """The normalised candidate answers of an open reply, or ``"API Error"`` for an empty one."""
    if response in (API_ERROR, ""):
        return API_ERROR
    tails = _key_tails(response)
    cands = list(tails)
    for tail in tails:
        cands += _numbers(tail)
    out: list[Any] = []
    for c in cands:
        out += mmmu_normalize(c)
    return list(set(out))


def mmmu_open_correct(gold: Any, preds: list[Any] | str) -> bool:
    """``eval_open``: a gold string inside a predicted string, or a gold number among the predicted numbers."""
    golds: list[Any] = []
    for g in (gold if isinstance(gold, list) else [gold]):
        golds += mmmu_normalize(g)
    for p in preds:
        if isinstance(p, str):
            if any(isinstance(g, str) and g in p for g in golds):
                return True
        elif p in golds:
            return True
    return False


def mmmu_choice_correct(gold: Any, pred: Any) -> bool:
    """``eval_multi_choice``: exact equality (with any of a list of golds)."""
    return any(g == pred for g in gold) if isinstance(gold, list) else gold == pred


# ------------------------------------------------------------------ TempCompass

TEMPCOMPASS_FORMATS = ("multi-choice", "yes_no", "caption_matching")


def tempcompass_multi_choice(pred: str, answer: str) -> int | None:
    if pred == answer:
        return 1
    if pred in ("A", "B", "C", "D"):
        return int(pred == answer[0])
    if any(pred.startswith(p) for p in ("A.", "B.", "C.", "D.")):
        return int(pred.split(".")[0] == answer[0])
    if any(pred.startswith(p) for p in ("A)", "B)", "C)", "D)")):
        return int(pred.split(")")[0] == answer[0])
    return None


def tempcompass_yes_no(pred: str, answer: str) -> int | None:
    low = pred.lower()
    said = "yes" if low.startswith("yes") else "no" if low.startswith("no") else None
    return None if said is None else int(said == answer)


def tempcompass_caption_matching(pred: str, question: str, answer: str) -> int | None:
    """``eval_rule``; raises ``ValueError`` where lmms-eval's own code would fail on the row (an option line or
    the answer without ``": "``)."""
    try:
        lines = question.split("\n")[1:]
        sentences = [line.split(": ")[1] for line in lines]
        labels = [line.split(": ")[0] for line in lines]
        labels += [lab.replace("Sentence ", "").replace("Option ", "").replace("Caption ", "") for lab in labels]
        picked = None
        for line in lines:
            if line == pred:
                picked = line
        for sent in sentences:
            if sent == pred or (") " in pred and sent == pred.split(") ")[1]):
                picked = sent
        for lab in labels:
            if lab == pred or lab == pred.replace(".", ""):
                picked = lab
        if picked is None:
            return None
        return int(picked == answer or picked == answer.split(":")[0] or picked == answer.split(": ")[1]
                   or picked == answer.split(": ")[0].split()[1])
    except IndexError:
        raise ValueError("caption_matching row without 'Label: sentence' lines / answer: lmms-eval 0.7.3's "
                         "eval_rule fails on it") from None


def tempcompass_rule(fmt: str, pred: str, question: str, answer: str) -> int | None:
    """The rating of one TempCompass reply by the format's rules; ``None`` = lmms-eval would ask its judge."""
    if fmt == "multi-choice":
        return tempcompass_multi_choice(pred, answer)
    if fmt == "yes_no":
        return tempcompass_yes_no(pred, answer)
    if fmt == "caption_matching":
        return tempcompass_caption_matching(pred, question, answer)
    raise ValueError(f"TempCompass task_type {fmt!r} is not one of {', '.join(TEMPCOMPASS_FORMATS)}")
