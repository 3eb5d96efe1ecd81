"""One verdict per rollout: the four checks of VerIPO's Rollout-Aware Verifier (Fig. 2) plus who judged.

``consistency`` is one of
    consistent    the judge says the final answer is what the reasoning concludes
    inconsistent  the judge says they disagree (used as a hard negative)
    unknown       the judge ran but could not tell (e.g. the reasoning states no conclusion)
    unjudged      the judge failed after all retries (dead endpoint, timeouts, garbage): never counted
                  as consistent, never chosen
``reasons`` lists why the rollout is not good: bad_format, wrong_answer, inconsistent, repetitive,
truncated, unjudged, accuracy_not_finite (the accuracy reward returned NaN/inf: recorded as 0, a failed check). ``good`` = no reasons, and consistency is consistent (or unknown when the config
accepts it).
"""
from __future__ import annotations

import dataclasses
from typing import Any

CONSISTENCY_LABELS = ("consistent", "inconsistent", "unknown", "unjudged")


@dataclasses.dataclass
class Verdict:
    rollout_id: str
    group_id: str
    prompt_id: str
    problem_type: str
    format_ok: bool
    answer: str | None
    think_tokens: int
    repetition_score: float
    repetitive: bool
    accuracy: float
    correct: bool
    consistency: str = "unjudged"
    judge: str = ""
    judge_detail: str = ""
    judge_attempts: int = 0
    judge_latency_s: float = 0.0
    judge_fallback: bool = False
    truncated: bool = False
    accuracy_finite: bool = True
    reasons: list[str] = dataclasses.field(default_factory=list)
    good: bool = False
    content_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``reasons`` copied): what ``dataclasses.asdict`` gives, without its
        recursive deep copy (the service returns thousands of verdicts a second)."""
        d = {name: getattr(self, name) for name in _FIELD_NAMES}
        d["reasons"] = list(self.reasons)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Verdict":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def summary(self) -> dict[str, Any]:
        """The fields a pair's provenance keeps."""
        return {k: getattr(self, k) for k in ("accuracy", "correct", "format_ok", "consistency", "judge",
                                              "repetitive", "repetition_score", "think_tokens", "reasons")}


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Verdict))


def finalize(v: Verdict, accept_unknown: bool = True) -> Verdict:
    """Fill ``reasons`` and ``good`` from the check results (idempotent)."""
    reasons = []
    if not v.format_ok:
        reasons.append("bad_format")
    if not v.correct:
        reasons.append("wrong_answer")
    if v.consistency == "inconsistent":
        reasons.append("inconsistent")
    if v.repetitive:
        reasons.append("repetitive")
    if v.truncated:
        reasons.append("truncated")
    if v.consistency == "unjudged":
        reasons.append("unjudged")
    if not v.accuracy_finite:
        reasons.append("accuracy_not_finite")
    if v.consistency == "unknown" and not accept_unknown:
        reasons.append("unknown_consistency")
    v.reasons = reasons
    v.good = not reasons
    return v
