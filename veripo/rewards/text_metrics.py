"""Text-similarity scores for OCR and free-form answers, dependency-free (no jiwer / rouge-score needed
at run time; the tests check both against those packages).

* WER (word error rate) = word-level Levenshtein distance(reference, hypothesis) / #reference words.
* ROUGE-N F1 (Lin, 2004, "ROUGE: A Package for Automatic Evaluation of Summaries"): clipped n-gram
  overlap; precision = overlap / #hyp n-grams, recall = overlap / #ref n-grams, F1 = 2PR/(P+R).
* ROUGE-L F1: the same with the longest common subsequence length as the overlap.
Tokenisation follows rouge-score's default: lower-case, every non-alphanumeric run is a separator.
"""
from __future__ import annotations

import re
from collections import Counter


def rouge_tokens(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER over whitespace-separated words (case-sensitive, as jiwer's default). An empty reference gives
    0.0 for an empty hypothesis and 1.0 otherwise."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return 0.0 if not hyp else 1.0
    return _edit_distance(ref, hyp) / len(ref)


def _f1(overlap: int, n_hyp: int, n_ref: int) -> float:
    if overlap == 0 or n_hyp == 0 or n_ref == 0:
        return 0.0
    p, r = overlap / n_hyp, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge_n(reference: str, hypothesis: str, n: int) -> float:
    ref, hyp = rouge_tokens(reference), rouge_tokens(hypothesis)
    rc = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
    hc = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
    overlap = sum((rc & hc).values())
    return _f1(overlap, sum(hc.values()), sum(rc.values()))


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(reference: str, hypothesis: str) -> float:
    ref, hyp = rouge_tokens(reference), rouge_tokens(hypothesis)
    return _f1(_lcs(ref, hyp), len(hyp), len(ref))
