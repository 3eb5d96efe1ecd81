"""Accuracy reward by problem type (Video-R1 ``grpo.py`` / VerIPO ``calculate_score.py``, spec §4, §6-7).

``accuracy_reward(response, sample) -> float in [0, 1]``: the prediction is the content of the last
``<answer>`` block (no block -> 0.0); the gold answer is ``sample.solution`` without its tags.

=================  ====================================================================================
multiple choice    1 if the option letter the answer commits to equals the gold letter (see
                   :func:`~veripo.rewards.answers.choice_letter`: "B", "(B)", "B. green", "$B$", or the
                   option text) and no other option letter is named; else 0
numerical          1 if the two numbers agree: ``|p-g| <= 1e-6 + 1e-4|g|`` or equal after rounding to
                   2 decimals (Video-R1 rounds to 2 decimals; "2.0" and "2" are equal here); else 0
OCR                ``clip(1 - WER(gold, pred), 0, 1)`` (Video-R1)
free-form          mean of ROUGE-1, ROUGE-2 and ROUGE-L F1 (Video-R1)
regression         mean relative accuracy (VSI-Bench, Yang et al. 2024 "Thinking in Space"):
                   ``MRA = 1/10 sum_{θ in {.50,.55,...,.95}} 1[|p-g|/|g| <= 1-θ]``
=================  ====================================================================================

A row without a known ``problem_type`` is treated as multiple choice when it has options, numerical
when its gold answer is a number, and free-form otherwise.
"""
from __future__ import annotations

import math
from typing import Callable

from veripo.data.schema import Sample
from veripo.rewards.answers import choice_letter, extract_answer, gold_answer, parse_number
from veripo.rewards.text_metrics import rouge_l, rouge_n, word_error_rate

MRA_THRESHOLDS = tuple(round(0.50 + 0.05 * i, 2) for i in range(10))


def multiple_choice_accuracy(pred: str, gold: str, options: list[str] | None = None) -> float:
    gold_letter = choice_letter(gold, options) or gold.strip().upper()[:1]
    return float(choice_letter(pred, options) == gold_letter)


def numerical_accuracy(pred: str, gold: str) -> float:
    p, g = parse_number(pred), parse_number(gold)
    if p is None or g is None:
        return 0.0
    return float(abs(p - g) <= 1e-6 + 1e-4 * abs(g) or round(p, 2) == round(g, 2))


def ocr_accuracy(pred: str, gold: str) -> float:
    return min(1.0, max(0.0, 1.0 - word_error_rate(gold.strip(), pred.strip())))


def free_form_accuracy(pred: str, gold: str) -> float:
    return (rouge_n(gold, pred, 1) + rouge_n(gold, pred, 2) + rouge_l(gold, pred)) / 3.0


def mean_relative_accuracy(pred: float | None, gold: float | None,
                           thresholds: tuple[float, ...] = MRA_THRESHOLDS) -> float:
    """MRA (VSI-Bench): fraction of confidence thresholds θ with relative error ``|p-g|/|g| <= 1-θ``.
    ``g == 0`` counts as a hit only for ``p == 0``. Example: g=10, p=12 (rel. error 0.2) -> θ in
    {.50,...,.80} pass -> 7/10 = 0.7."""
    if pred is None or gold is None or math.isnan(pred) or math.isinf(pred):
        return 0.0
    if gold == 0:
        return float(pred == 0)
    rel = abs(pred - gold) / abs(gold)
    return sum(rel <= round(1.0 - t, 2) + 1e-12 for t in thresholds) / len(thresholds)


def regression_accuracy(pred: str, gold: str) -> float:
    return mean_relative_accuracy(parse_number(pred), parse_number(gold))


SCORERS: dict[str, Callable[..., float]] = {
    "numerical": numerical_accuracy,
    "OCR": ocr_accuracy,
    "free-form": free_form_accuracy,
    "regression": regression_accuracy,
}


def infer_problem_type(sample: Sample) -> str:
    ptype = sample.problem_type
    if ptype == "multiple choice" or ptype in SCORERS:
        return ptype
    if sample.options:
        return "multiple choice"
    return "numerical" if parse_number(gold_answer(sample)) is not None else "free-form"


def score_answer(pred: str | None, sample: Sample) -> float:
    """Score an already-extracted answer string against a sample's gold answer."""
    if pred is None:
        return 0.0
    ptype = infer_problem_type(sample)
    gold = gold_answer(sample)
    if ptype == "multiple choice":
        return multiple_choice_accuracy(pred, gold, sample.options)
    return float(SCORERS[ptype](pred, gold))


def accuracy_reward(response: str, sample: Sample) -> float:
    """Accuracy of a full response (``<think>..</think><answer>..</answer>``) against a sample's answer."""
    return score_answer(extract_answer(response), sample)


CORRECT_THRESHOLD = 0.5


def is_correct(accuracy: float, threshold: float = CORRECT_THRESHOLD) -> bool:
    """Whether an accuracy score counts as a correct answer: the one rule of GRPO (controllers, pruning, DRPO's and
    XRPO's correctness) and the verifier (``verifier.correct_threshold`` defaults to it). Multiple-choice and
    numerical scores are 0 or 1; graded scores (MRA, WER, ROUGE) count from ``threshold`` on. A non-finite score is
    not correct."""
    return bool(accuracy >= threshold)  # NaN >= t is False
