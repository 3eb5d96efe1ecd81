"""Per-item scoring rules of the video benchmarks: option letters (strict / lenient), numbers (MRA, exact).

Two published letter rules disagree, so both are offered and every item is scored both ways
(``ItemScore.score_strict`` / ``score_lenient``); ``match`` picks which one is ``score``:

``strict`` (default) — VerIPO ``evaluation/calculate_score.py`` (spec/veripo-method.md §6.1), the scorer behind
    the VerIPO paper's numbers: take the first ``<answer>...</answer>`` span (raw, no LaTeX stripping); the item
    is correct iff the gold letter occurs in it (case-insensitive) **and no other letter a–j occurs anywhere in
    it**. So ``"$B$"`` and ``"b"`` pass, ``"B. front-left"`` fails (the ``f``/``e``/``t`` of "left" are letters
    a–j), and option text alone fails. One deliberate difference: VerIPO scores a response without
    ``<answer>`` tags as wrong; here the whole response is the span, so a direct-answer prompt's ``"B"`` is
    scored (a tagless *reasoning* output still fails, because its prose contains other letters).
``lenient`` — extract the one option letter the answer commits to (:func:`veripo.rewards.choice_letter`:
    ``"B"``, ``"(B)"``, ``"B. green"``, ``"$B$"``, ``"The answer is B."``, ``"b"``, or the option text alone),
    ``None`` when it names several letters; correct iff it equals the gold letter. A rule of the same kind as
    the benchmarks' rule-based extractors, but not any one of them.
``official`` — each benchmark exactly as lmms-eval 0.7.3 scores it (:mod:`veripo.eval.official`); not a
    per-item rule of this module.

Numbers: ``strict`` parses the first whitespace token of the span with ``$`` and a trailing ``.`` removed
(VerIPO's ``fuzzy_matching`` + ``float`` for VSI-Bench) — ``"3.5 meters"`` -> 3.5, ``"about 3"`` ->
unparseable (score 0); ``lenient`` takes the first number anywhere in the span.

Mean relative accuracy (VSI-Bench, Yang et al. 2024 "Thinking in Space", lmms-eval
``mean_relative_accuracy(start=.5, end=.95, interval=.05)``):

    MRA(ŷ, y) = 1/10 · Σ_{θ ∈ {0.50, 0.55, …, 0.95}} 1[ |ŷ − y| / |y| ≤ 1 − θ ]

(``veripo.rewards.mean_relative_accuracy``; thresholds rounded to 2 decimals so that a relative error of
exactly 0.25 passes θ = 0.75 as the ``≤`` says.) lmms-eval 0.7.3 and VerIPO compare with numpy's unrounded
thresholds instead, where 12 vs 10 scores 0.6, not 0.7 (``--match official``,
:func:`veripo.eval.lmms_rules.vsi_mra`). Video-R1's ``eval_bench.py`` uses ``<`` (:func:`mra_video_r1`).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from veripo.rewards import choice_letter, mean_relative_accuracy, parse_number, strip_latex
from veripo.rewards.accuracy import MRA_THRESHOLDS, numerical_accuracy

MATCH_MODES = ("strict", "lenient", "official")  # official: lmms-eval 0.7.3's scorers (veripo.eval.official)
DEFAULT_MATCH = "strict"
VERIPO_LETTERS = "abcdefghij"
_ANSWER_SPAN_RE = re.compile(r"<answer>(.*?)</answer>", re.S)


@dataclasses.dataclass
class ItemScore:
    """One scored prediction. ``score`` is the value under the chosen match mode, in [0, 1]."""

    item_id: str
    task: str
    kind: str  # "mc" | "mra" | "numeric" | "open"
    gold: str
    pred: str | None
    score: float
    score_strict: float
    score_lenient: float
    tasks: tuple[str, ...] = ()  # extra task labels (LVBench questions carry several)
    groups: dict[str, str] = dataclasses.field(default_factory=dict)  # other breakdowns, e.g. duration
    counted: bool = True  # in the benchmark's denominator (official: MVBench leaves empty answers out, ...)
    judge_input: dict[str, str] | None = None  # official TempCompass: what lmms-eval would send to its judge

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        return d


def answer_span(response: str | None) -> str:
    """The raw text inside the first ``<answer>...</answer>`` (VerIPO's ``re.search``), else the whole response."""
    if not response:
        return ""
    m = _ANSWER_SPAN_RE.search(response)
    return (m.group(1) if m else response).strip()


def veripo_letter_correct(span: str, gold_letter: str, letters: str = VERIPO_LETTERS) -> bool:
    """VerIPO's multiple-choice rule: gold letter in ``span.lower()`` and no other of ``letters`` in it."""
    s, g = span.lower(), gold_letter.strip().lower()
    if not g or g not in s:
        return False
    return not any(ch in s for ch in letters if ch != g)


def score_multiple_choice(response: str | None, gold_letter: str, options: list[str] | None = None
                          ) -> tuple[str | None, float, float]:
    """``(lenient letter, strict score, lenient score)`` for one multiple-choice response."""
    span = answer_span(response)
    letter = choice_letter(span, options)
    strict = float(veripo_letter_correct(span, gold_letter))
    lenient = float(letter is not None and letter == gold_letter.strip().upper())
    return letter, strict, lenient


def strict_number(span: str) -> float | None:
    """First whitespace token, ``$`` removed and a trailing ``.`` stripped, as a float (VerIPO)."""
    tokens = span.replace("$", " ").split()
    if not tokens:
        return None
    tok = tokens[0].rstrip(".")
    try:
        return float(tok)
    except ValueError:
        return None


def lenient_number(span: str) -> float | None:
    """First number anywhere in the span (``"about 3.5 m"`` -> 3.5, ``"\\boxed{2}"`` -> 2)."""
    return parse_number(strip_latex(span))


def mra(pred: float | None, gold: float | None) -> float:
    """Mean relative accuracy over θ ∈ {0.50, …, 0.95} with ``≤``, thresholds rounded (see the module doc)."""
    return mean_relative_accuracy(pred, gold)


def mra_video_r1(pred: float | None, gold: float | None) -> float:
    """Video-R1 ``eval_bench.py`` variant: relative error ``|ŷ−y| / (|y| + 1e-8)`` and strict ``<``."""
    if pred is None or gold is None:
        return 0.0
    rel = abs(pred - gold) / (abs(gold) + 1e-8)
    return sum(rel < round(1.0 - t, 2) for t in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


def score_mra(response: str | None, gold: float) -> tuple[str | None, float, float]:
    """``(parsed prediction, strict MRA, lenient MRA)`` for a numeric-answer (regression) item."""
    span = answer_span(response)
    p_strict, p_lenient = strict_number(span), lenient_number(span)
    shown = p_lenient if p_lenient is not None else p_strict
    return (None if shown is None else repr(shown)), mra(p_strict, gold), mra(p_lenient, gold)


def score_numeric_exact(response: str | None, gold: str) -> tuple[str | None, float, float]:
    """Exact numeric answers (counting etc.): equal after rounding to 2 decimals (Video-R1 ``numerical``)."""
    span = answer_span(response)
    p_strict, p_lenient = strict_number(span), lenient_number(span)
    strict = 0.0 if p_strict is None else numerical_accuracy(repr(p_strict), gold)
    lenient = 0.0 if p_lenient is None else numerical_accuracy(repr(p_lenient), gold)
    shown = p_lenient if p_lenient is not None else p_strict
    return (None if shown is None else repr(shown)), strict, lenient


def _norm_text(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9.]+", " ", text.lower()).split()).strip(".")


def _is_plain_number(text: str) -> bool:
    try:
        float(text.replace(",", "").strip())
        return True
    except ValueError:
        return False


def score_open(response: str | None, gold: str) -> tuple[str | None, float, float]:
    """Open (short-answer) items, MMMU-style: a number must equal the gold after rounding to 2 decimals;
    text must equal the gold (strict) or contain it as a whole phrase (lenient), case/punctuation-insensitive."""
    span = strip_latex(answer_span(response))
    if _is_plain_number(gold):
        _, strict, lenient = score_numeric_exact(response, gold)
        return span or None, strict, lenient
    p, g = _norm_text(span), _norm_text(gold)
    strict = float(bool(g) and p == g)
    lenient = float(bool(g) and (p == g or re.search(rf"(?<![a-z0-9]){re.escape(g)}(?![a-z0-9])", p) is not None))
    return span or None, strict, lenient


def pick(strict: float, lenient: float, match: str) -> float:
    """The strict or lenient score; ``official`` takes the strict one here (the official score replaces it)."""
    if match not in MATCH_MODES:
        raise ValueError(f"match must be one of {MATCH_MODES}, got {match!r}")
    return lenient if match == "lenient" else strict
