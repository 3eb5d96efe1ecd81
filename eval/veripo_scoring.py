"""VerIPO's own per-item scorer, bit for bit: ``evaluation/calculate_score.py`` of HITsz-TMG/VerIPO (spec
/veripo-method.md §6.1), used by the ``veripo_json`` adapter (:mod:`veripo.eval.adapter_veripo_json`).

Per item, with ``gt = str(answer)`` and ``span`` = the first ``<answer>(.*?)</answer>`` (``re.DOTALL``),
stripped, stray ``<answer>``/``</answer>`` removed — **empty when the response has no tags** (unlike
:func:`veripo.eval.scoring.answer_span`, which falls back to the whole response):

* multiple choice, iff ``gt.isalpha() and gt.isupper()``: 1 iff ``gt.lower()`` occurs in ``span.lower()`` and no
  other letter of a–j occurs anywhere in it (:func:`veripo.eval.scoring.veripo_letter_correct`): ``"$B$"``
  passes, ``"B. front-left"`` fails on the ``f``/``e``/``t``.
* numeric, VSI-Bench file (``"vsi_bench" in pred_path``): ``span.strip("$")``, then ``fuzzy_matching`` = the
  text before the first *space* (``split(' ')[0]``), trailing ``.`` removed, as a float; an empty span, a
  token that is no float, or ``gt == 0`` scores 0 (the script's ``try/except: continue``). Then

      MRA(ŷ, y) = mean over θ ∈ np.linspace(0.5, 0.95, 10) of 1[ |ŷ − y| / y ≤ 1 − θ ]

  with numpy's float thresholds *unrounded* (:func:`veripo_mra`). This differs from the rounded thresholds of
  :func:`veripo.eval.scoring.mra` exactly at some boundaries: 12 vs 10 (relative error 0.2) scores 0.6 here,
  0.7 there, because ``1 − 0.8`` is ``0.19999999999999996`` in floating point. ``"$100$."`` -> ``strip("$")``
  leaves ``"100$."`` -> not a float -> 0 (the harness's ``strict_number`` reads 100).
* numeric, any other file: ``math_verify.verify(parse(whole response, [String, Latex, Expr]), parse("$gt$"))``
  (math-verify 0.6.0 in VerIPO's requirement.txt). When ``math_verify`` is not installed a documented
  fallback is used instead (:func:`fallback_math_equal`) and results say so (``MATH_CHECK``).

Final score = sum of item scores / N (micro average over all items, MC and numeric together).
"""
from __future__ import annotations

import math
import re

import numpy as np

from veripo.eval.scoring import veripo_letter_correct
from veripo.rewards import parse_number, strip_latex

_SPAN_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER_TOKEN_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?")
# calculate_score.py: mean_relative_accuracy(start=.5, end=.95, interval=.05) -> int((end-start)/interval + 2)
# = 10 points of np.linspace, compared unrounded
VERIPO_MRA_THRESHOLDS = np.linspace(0.5, 0.95, int((0.95 - 0.5) / 0.05 + 2))
# a ground-truth quirk calculate_score.py rewrites before math_verify
_GT_REWRITES = {"['24/7', '3.429', '3.43]": "24/7", "['24/7', '3.429', '3.43']": "24/7"}


def veripo_answer(response: str | None) -> str:
    """calculate_score.py's ``extracted_answer``: the first ``<answer>`` span, stripped, or ``""``."""
    m = _SPAN_RE.search(response or "")
    span = m.group(1).strip() if m else ""
    return span.replace("</answer>", "").replace("<answer>", "").strip()


def is_veripo_mc(gold: str) -> bool:
    """calculate_score.py scores an item as multiple choice iff ``gt.isalpha() and gt.isupper()``."""
    return gold.isalpha() and gold.isupper()


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def veripo_number(span: str) -> float | None:
    """``to_float(fuzzy_matching(span.strip("$")))``: text before the first space, trailing ``.`` removed."""
    return _to_float(span.strip("$").split(" ")[0].rstrip(".").strip())


def veripo_mra(pred: float | None, gold: float | None) -> float:
    """calculate_score.py ``mean_relative_accuracy``: ``mean(|ŷ−y|/y <= 1 − linspace(.5, .95, 10))``; any
    failure (no prediction, no gold, ``y == 0``) is the script's ``except: continue`` -> 0."""
    if pred is None or gold is None or gold == 0:
        return 0.0
    return float(np.mean(abs(pred - gold) / gold <= 1 - VERIPO_MRA_THRESHOLDS))


def score_vsi_numeric(response: str | None, gold: str) -> tuple[str | None, float]:
    """``(extracted answer, MRA)`` for a numeric VSI-Bench item."""
    span = veripo_answer(response)
    if not span:
        return None, 0.0
    return span, veripo_mra(veripo_number(span), _to_float(gold.strip("$").strip()))


# ---------------------------------------------------------------- math check (non-VSI numeric items)

def _math_verify_equal(response: str, gold: str) -> float:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify

    gold_parsed = parse(f"${gold}$")
    answer_parsed = parse(response, extraction_config=[StringExtractionConfig(), LatexExtractionConfig(),
                                                       ExprExtractionConfig()])
    return float(verify(answer_parsed, gold_parsed))  # calculate_score.py's argument order, kept as is


def _math_verify_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("math_verify") is not None


MATH_CHECK = ("math_verify" if _math_verify_available() else
              "fallback (math_verify not installed): last number of the <answer> span, else of the whole "
              "response, equals the gold number after rounding both to 6 decimals")


def fallback_math_equal(response: str, gold: str) -> float:
    """Stand-in for math_verify when it is not installed (documented, not bit-exact).

    The prediction is the last number (``3``, ``-2.5``, ``1,200``, ``24/7``, ``\\frac{24}{7}``) of the first
    ``<answer>`` span, else of the whole response — math_verify also prefers the last match it can parse. It
    is correct iff it equals the gold number after rounding both to 6 decimals (math_verify's default
    ``float_rounding=6``). A gold that is not a number is compared as text with the LaTeX-stripped span,
    case-insensitively."""
    g = parse_number(gold)
    span = veripo_answer(response) or (response or "")
    text = strip_latex(span)
    if g is None:
        return float(bool(gold.strip()) and text.strip().lower() == strip_latex(gold).strip().lower())
    text = re.sub(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}", r"\1/\2", text)
    tokens = _NUMBER_TOKEN_RE.findall(text)
    p = parse_number(tokens[-1].replace(" ", "")) if tokens else None
    if p is None or math.isnan(p) or math.isinf(p):
        return 0.0
    return float(round(p, 6) == round(g, 6))


def math_equal(response: str | None, gold: str) -> float:
    """calculate_score.py's math_verify branch (the fallback when math_verify is not installed)."""
    gold = _GT_REWRITES.get(gold, gold)
    if MATH_CHECK == "math_verify":
        return _math_verify_equal(response or "", gold)
    return fallback_math_equal(response or "", gold)


def veripo_item_score(response: str | None, gold: str, vsi_bench: bool) -> tuple[str, str | None, float]:
    """``(kind, extracted answer, score)`` of one item under calculate_score.py; kind is mc | mra | numeric."""
    span = veripo_answer(response)
    if is_veripo_mc(gold):
        return "mc", span or None, float(veripo_letter_correct(span, gold))
    if vsi_bench:
        pred, score = score_vsi_numeric(response, gold)
        return "mra", pred, score
    return "numeric", span or None, math_equal(response, gold)
