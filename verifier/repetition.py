"""The repetition rule of the verifier (VerIPO Fig. 2 "Repetition Check: r_i -> Rule"; the rule itself is
our design, spec §2.3):

    ngram_ratio   = 1 - #distinct word n-grams / #word n-grams          (n = 4 by default)
    sentence_dup  = 1 - #distinct sentences / #sentences
    score         = max(ngram_ratio, sentence_dup)                       in [0, 1]
    repetitive    = (ngram_ratio > max_ngram_ratio and #n-grams >= min_ngrams)
                    or some sentence occurs >= max_sentence_repeats times

:func:`clean_repetition` removes repeated sentences and immediately repeated word spans (loops), which
builds the "chosen" side of a single-rollout pair.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?。])\s+|\n+")
_NON_WORD = re.compile(r"[^\w]+")


@dataclasses.dataclass
class RepetitionResult:
    score: float
    repetitive: bool
    ngram_ratio: float
    max_sentence_repeats: int


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and s.strip()]


def _norm_sentence(s: str) -> str:
    return " ".join(_NON_WORD.sub(" ", s.lower()).split())


def repetition_check(text: str | None, ngram: int = 4, max_ngram_ratio: float = 0.3,
                     max_sentence_repeats: int = 3, min_ngrams: int = 8) -> RepetitionResult:
    words = (text or "").lower().split()
    grams = [tuple(words[i:i + ngram]) for i in range(len(words) - ngram + 1)]
    ngram_ratio = 1.0 - len(set(grams)) / len(grams) if grams else 0.0
    sents = [_norm_sentence(s) for s in _sentences(text or "")]
    sents = [s for s in sents if s]
    counts = Counter(sents)
    top = max(counts.values()) if counts else 0
    sentence_dup = 1.0 - len(counts) / len(sents) if sents else 0.0
    repetitive = (ngram_ratio > max_ngram_ratio and len(grams) >= min_ngrams) or top >= max_sentence_repeats
    return RepetitionResult(score=round(max(ngram_ratio, sentence_dup), 6), repetitive=repetitive,
                            ngram_ratio=round(ngram_ratio, 6), max_sentence_repeats=top)


def _collapse_loops(words: list[str], max_span: int = 30) -> list[str]:
    """Drop immediate repeats of any span of 1..max_span words: "a b a b a b c" -> "a b c"."""
    changed = True
    while changed:
        changed = False
        for span in range(1, min(max_span, len(words) // 2) + 1):
            out: list[str] = []
            i = 0
            while i < len(words):
                chunk = words[i:i + span]
                if len(out) >= span and len(chunk) == span and \
                        [w.lower() for w in out[-span:]] == [w.lower() for w in chunk]:
                    i += span
                    changed = True
                    continue
                out.append(words[i])
                i += 1
            words = out
    return words


def clean_repetition(text: str) -> str:
    """Keep the first occurrence of every sentence, then collapse looping word spans."""
    seen: set[str] = set()
    kept = []
    for s in _sentences(text):
        key = _norm_sentence(s)
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(s)
    return " ".join(_collapse_loops(" ".join(kept).split()))
