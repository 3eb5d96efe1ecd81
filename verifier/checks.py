"""The per-rollout checks that need no judge: format, reasoning length, repetition, accuracy.

``check_rollout`` returns a :class:`~veripo.verifier.verdicts.Verdict` with ``consistency="unjudged"``;
the judge fills consistency afterwards (:mod:`veripo.verifier.pipeline`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import Any

from veripo.data.schema import Sample
from veripo.records import RolloutRecord
from veripo.rewards import (extract_answer, extract_think, format_ok, infer_problem_type, is_correct, resolve_reward,
                            think_length)
from veripo.verifier.config import VerifierConfig
from veripo.verifier.repetition import repetition_check
from veripo.verifier.verdicts import Verdict

log = logging.getLogger(__name__)


def content_hash(response: str, sample: Sample, salt: str = "") -> str:
    """Hash of what a verdict depends on (response, gold answer, question, options, config salt)."""
    key = {"r": response, "q": sample.problem, "o": sample.options, "s": sample.solution,
           "t": sample.problem_type, "salt": salt}
    return hashlib.sha256(json.dumps(key, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def check_rollout(rec: RolloutRecord, config: VerifierConfig, tokenizer: Any = None, salt: str = "") -> Verdict:
    response, sample = rec.response or "", rec.sample
    think = extract_think(response)
    rep_cfg = config.repetition
    rep = repetition_check(think if think is not None else response, ngram=rep_cfg.ngram,
                           max_ngram_ratio=rep_cfg.max_ngram_ratio,
                           max_sentence_repeats=rep_cfg.max_sentence_repeats, min_ngrams=rep_cfg.min_ngrams)
    accuracy = float(resolve_reward(config.accuracy_reward)(response, sample))
    finite = math.isfinite(accuracy)
    if not finite:  # never into verdicts / pairs: a failed check, 0 accuracy (reason accuracy_not_finite)
        log.warning("rollout %s: accuracy reward %r returned %s: recorded as 0 (a failed check)", rec.rollout_id,
                    config.accuracy_reward, accuracy)
        accuracy = 0.0
    return Verdict(
        rollout_id=rec.rollout_id, group_id=rec.group_id, prompt_id=rec.prompt_id,
        problem_type=infer_problem_type(sample), format_ok=format_ok(response),
        answer=extract_answer(response), think_tokens=think_length(response, tokenizer),
        repetition_score=rep.score, repetitive=rep.repetitive, accuracy=accuracy,
        correct=finite and is_correct(accuracy, config.correct_threshold), truncated=rec.finish_reason == "length",
        accuracy_finite=finite,
        content_hash=content_hash(response, sample, salt),
    )
