"""lmms-eval 0.7.3's answer-reading rules, re-derived (``--match official``; :mod:`veripo.eval.official`).

Each function reproduces one rule of lmms-eval 0.7.3 (``pip download --no-deps lmms-eval==0.7.3``) exactly —
same text operations in the same order, same quirks — so that a response scores here as it does there.
lmms-eval is never imported; ``tests/test_eval_lmms_parity.py`` checks these against its own task code.

* :func:`reduce_reasoning` — ``models/model_utils/reasoning_model_utils.py parse_reasoning_model_answer``:
  every ``<think>…</think>`` removed, then the first ``<answer>`` content, else the first ``\\boxed{}`` content
  (up to the first ``}``), else the rest.
* :func:`mcq_letter` — ``tasks/_task_utils/mcq_extract.py extract_mcq_answer`` (Video-MME, LVBench, VideoMMMU):
  candidate letters in ten formats, each with a priority (start 10, end 9, answer phrase 7, ``(X)`` 6,
  ``X.`` 5, ``X:`` 4, ``X)`` 3, ``"X "`` 2, any occurrence 0 only when nothing else matched); the highest
  priority wins, then the later position; ``""`` when none. Upper-case letters only.
* :func:`tomato_letter` — ``tasks/tomato/utils.py parse_multi_choice_response``: any upper-case option letter
  *anywhere* is a candidate (its ``(X)`` test lacks the brackets); several -> the one whose ``(X)`` occurs
  last, the first when none does; no letter in a reply of more than 5 words -> option text; nothing -> ``"A"``.
* :func:`mvbench_normalize` — ``tasks/mvbench/utils.py mcq_acc``'s ``process``: ``"X. text"`` -> ``X``; else
  punctuation handling, lower case, the first standalone a–e letter, else the cleaned text.
* :func:`mmvu_mc_correct` — ``tasks/mmvu/utils.py evaluate_with_rule_based`` (multiple choice).
* :func:`vsi_choice`, :func:`vsi_number`, :func:`vsi_mra` — ``tasks/vsibench/utils.py``: the first
  space-separated token for letters; the first number, digits or English number words, for numbers; MRA
  with numpy's unrounded thresholds, ``|ŷ − y| / y ≤ 1 − θ`` for θ in ``np.linspace(.5, .95, 10)``, so a
  relative error of exactly 0.2 fails θ = 0.8 (``1 − 0.8`` is ``0.19999999999999996``).
"""
from __future__ import annotations

import re

import numpy as np

_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_BOXED_RE = re.compile(r"\\boxed\{\s*(.*?)\s*\}", re.DOTALL)


def reduce_reasoning(response: str) -> str:
    """The part of a reasoning model's reply lmms-eval scores (``parse_reasoning_model_answer``)."""
    rest = _THINK_RE.sub("", response).strip()
    for pattern in (_ANSWER_RE, _BOXED_RE):
        m = pattern.search(rest)
        if m:
            return m.group(1)
    return rest


# ------------------------------------------------------------------ mcq_extract (Video-MME, LVBench, VideoMMMU)

MCQ_DEFAULT_CHOICES = tuple("ABCDEFGH")
# the answer phrases of extract_mcq_answer, in its order (English, Korean, Chinese, Japanese)
MCQ_PHRASES = ("the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
               "best answer is", "the correct option is", "correct option is", "the best option is",
               "best option is", "the choice is", "choice is", "the correct choice is", "correct choice is",
               "i choose", "i select", "i pick", "my answer is", "my choice is",
               "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは")
# (format, priority, template) for the formats found by the letter's last occurrence
_MCQ_MARKED = (("parentheses", 6, "({})"), ("period", 5, "{}."), ("colon", 4, "{}:"), ("right_paren", 3, "{})"),
               ("space", 2, "{} "))
_EDGE_PUNCT = (",", ".", "!", "?", ";", ":", "'", '"')


def _strip_each(text: str, chars: tuple[str, ...]) -> str:
    """``text.strip(c)`` for each ``c`` in turn (not all at once: the order matters)."""
    for c in chars:
        text = text.strip(c)
    return text


def mcq_letter(response: str, choices: tuple[str, ...] | list[str] = MCQ_DEFAULT_CHOICES) -> str:
    """The letter lmms-eval's ``extract_mcq_answer`` reads, or ``""``."""
    if not response or not response.strip():
        return ""
    choices = tuple(choices) or MCQ_DEFAULT_CHOICES
    padded = " " + _strip_each(response.strip(), _EDGE_PUNCT) + " "
    found: list[tuple[int, int, str]] = []  # (priority, position, letter), in the reference's insertion order
    for _, priority, template in _MCQ_MARKED:
        for ch in choices:
            pos = padded.rfind(template.format(ch))
            if pos != -1:
                found.append((priority, pos, ch))
    lowered = padded.lower()
    for phrase in MCQ_PHRASES:
        at = lowered.find(phrase)
        if at == -1:
            continue
        for ch in choices:
            pos = padded.find(ch, at + len(phrase))
            if pos != -1:
                found.append((7, pos, ch))
    core = padded.strip()
    for ch in choices:
        if core.startswith(ch) and (len(core) == 1 or not core[1].isalpha()):
            found.append((10, 0, ch))
    for ch in choices:
        if core.endswith(ch) and (len(core) == 1 or not core[-2].isalpha()):
            found.append((9, len(padded) - 1, ch))
    if not found:
        found = [(0, padded.rfind(ch), ch) for ch in choices if ch in padded]
    if not found:
        return ""
    best = found[0]
    for cand in found[1:]:  # the first of the maximal (priority, position): a stable descending sort's head
        if cand[:2] > best[:2]:
            best = cand
    return best[2]


# ------------------------------------------------------------------ TOMATO

_TOMATO_PUNCT = (",", ".", "!", "?", ";", ":", "'")


def tomato_letter(response: str, options: list[str]) -> str:
    """The letter TOMATO's lmms-eval parser reads (``"A"`` when it finds nothing)."""
    letters = [chr(65 + i) for i in range(len(options))]
    text = " " + _strip_each(response, _TOMATO_PUNCT) + " "
    by_letter = True
    cands = [ch for ch in letters if ch in text]
    bracketed = bool(cands)
    if not cands:
        cands = [ch for ch in letters if f" {ch} " in text]
    if not cands and len(text.split()) > 5:
        cands = [ch for ch, opt in zip(letters, options) if str(opt).lower() in text.lower()]
        by_letter = not cands
    if not cands:
        return "A"
    if len(cands) == 1:
        return cands[0]
    if not by_letter:
        marks = [text.lower().rfind(str(options[letters.index(c)]).lower()) for c in cands]
    elif bracketed:
        marks = [text.rfind(f"({c})") for c in cands]
    else:
        marks = [text.rfind(f" {c} ") for c in cands]
    return cands[int(np.argmax(marks))]


# ------------------------------------------------------------------ MVBench

_MV_OPTION_RE = re.compile(r"^([A-E])\.\s*(.+)$", re.IGNORECASE)
_MV_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_MV_COMMA_RE = re.compile(r"(\d)(,)(\d)")
_MV_PERIOD_RE = re.compile(r"(?!<=\d)(\.)(?!\d)")
_MV_PERIOD_MAX = 32  # the reference passes re.UNICODE (= 32) as re.sub's *count*: at most 32 periods go
_MV_LETTER_RE = re.compile(r"\b([A-E])\b", re.IGNORECASE)


def mvbench_normalize(text: str) -> str:
    """``mcq_acc``'s normal form of an answer: an upper-case letter A–E, else the cleaned lower-case text."""
    m = _MV_OPTION_RE.match(text.strip())
    if m:
        return m.group(1).upper()
    s = text.replace("\n", " ").replace("\t", " ").strip()
    out = s
    comma_between_digits = _MV_COMMA_RE.search(s) is not None
    for p in _MV_PUNCT:
        out = out.replace(p, "" if (p + " " in s or " " + p in s or comma_between_digits) else " ")
    out = _MV_PERIOD_RE.sub("", out, _MV_PERIOD_MAX)
    out = _strip_each(out, ("'", '"', ")", "(")).strip().lower()
    m = _MV_LETTER_RE.search(out)
    return m.group(1).upper() if m else out


def mvbench_correct(gold_letter: str, response: str) -> bool:
    return mvbench_normalize(response) == mvbench_normalize(gold_letter)


# ------------------------------------------------------------------ MMVU

_MMVU_LETTER_RE = re.compile(r"\b([A-E])\b", re.IGNORECASE)
_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"  # string.punctuation


def mmvu_mc_correct(response: str, gold: str, choices: dict[str, str]) -> bool:
    """MMVU's rule-based multiple-choice check (``evaluate_with_rule_based``)."""
    pred, ans = str(response).strip(), str(gold).strip()
    m = _MMVU_LETTER_RE.search(pred)
    if m and m.group(1).upper() == ans.upper():
        return True
    if ans.upper() in pred.upper() and re.search(rf"\b{re.escape(ans)}\b", pred, re.IGNORECASE):
        return True
    if ans in choices:
        text = str(choices[ans]).strip().lower()
        low = pred.lower()
        if text in low:
            return True
        if ans.upper() in pred.upper():
            words = [w.strip(_PUNCTUATION) for w in text.split() if len(w.strip(_PUNCTUATION)) > 2]
            if words and any(w in low for w in words):
                return True
    return False


def mmvu_logged_letter(response: str) -> str:
    """The letter MMVU logs as ``pred_answer`` (case-sensitive ``\\b[A-E]\\b``), or ``"N/A"``."""
    m = re.search(r"\b([A-E])\b", response)
    return m.group(1) if m else "N/A"


# ------------------------------------------------------------------ VSI-Bench

_NUMBER_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
                 "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
                 "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
                 "thousand": 1000}
_DIGITS_RE = re.compile(r"-?\d+(?:\.\d+)?")
_WORD_RE = re.compile(r"[a-z]+")
VSI_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # mean_relative_accuracy(start=.5, end=.95, interval=.05)


def vsi_choice_correct(response: str, gold: str) -> float:
    """``exact_match(fuzzy_matching(pred), gt)``: the text before the first space, trailing ``.`` removed."""
    token = response.split(" ")[0].rstrip(".").strip()
    return 1.0 if token.lower() == str(gold).lower() else 0.0


def vsi_number(text: str | None) -> float | None:
    """``extract_number``: the first number in the text, as digits or English words (``"twenty-one"`` -> 21)."""
    if text is None:
        return None
    s = str(text).strip().lower()
    if not s:
        return None
    digits = _DIGITS_RE.search(s)
    run: list[str] = []
    run_start = None
    for m in _WORD_RE.finditer(s):
        word = m.group(0)
        if run_start is None:
            if word in _NUMBER_WORDS:
                run_start, run = m.start(), [word]
        elif word in _NUMBER_WORDS:
            run.append(word)
        elif word != "and":
            break
    if digits is not None and (run_start is None or digits.start() < run_start):
        return float(digits.group(0))
    if run_start is None:
        return None
    total = current = 0
    for word in run:
        value = _NUMBER_WORDS[word]
        if value == 100:
            current = max(current, 1) * 100
        elif value == 1000:
            total, current = total + max(current, 1) * 1000, 0
        else:
            current += value
    return float(total + current)


def vsi_gold_number(gold) -> float | None:
    try:
        return float(gold)
    except BaseException:  # the reference's to_float
        return None


def vsi_mra(pred: float | None, gold: float | None) -> float:
    """VSI-Bench MRA as lmms-eval computes it; 0 when either side is missing (its TypeError worst case).
    ``|ŷ − y| / y`` divides by ``y`` itself (not ``|y|``); ``y = 0`` raises ``ValueError`` (lmms-eval stops)."""
    if pred is None or gold is None:
        return 0.0
    if gold == 0:
        raise ValueError("ground_truth 0: lmms-eval 0.7.3's MRA divides by it (its run stops there)")
    rel = abs(pred - gold) / gold
    return float((rel <= 1 - VSI_THRESHOLDS).mean())
