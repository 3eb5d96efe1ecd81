"""DPO pairs from verified GRPO rollouts (VerIPO Fig. 2: ``O_i -> (Chosen, Rejected)`` and
``O_i + O_j -> (Chosen, Rejected)``; recipe of spec §2.3, our reconstruction).

Per group (the G rollouts of one prompt, same ``group_id``):

* **quality** — chosen: a good rollout (correct, consistent, non-repetitive, well formed), longest
  reasoning first (VerIPO's aim is longer consistent CoT); rejected: a bad rollout, in the order
  correct-but-inconsistent (hard negative) > repetitive > wrong answer (shortest reasoning first) >
  bad format / truncated. Up to ``max_quality_per_prompt`` pairs, a good rollout reused when few.
Token ids: a response that is a rollout travels as that rollout's ``token_ids`` (``PairRecord.chosen_ids`` /
``rejected_ids``, end token included); a response made here from text is encoded by DPO with one end token.

* **reflective** — chosen: ``<think> r_wrong <reflection> r_good </think><answer> a_good </answer>``
  (a failed attempt, "Wait, let me re-check the video.", then a good reasoning to the right answer);
  rejected: the failed attempt ``O_wrong`` itself.
* **single** — one rollout against itself: rejected = a repetitive rollout with the right answer,
  chosen = the same rollout with its repeated sentences / loops removed (only when the cleaned text is
  no longer repetitive).

Rollouts that are only ``unjudged`` (the judge failed) are neither chosen nor rejected. A group where
every rollout is good has nothing to contrast and is skipped (as is one with no good and nothing to fix).
:func:`finalize_pairs` drops duplicates and balances problem types (no type keeps more than
``balance_ratio`` x the pairs of the rarest type that has pairs).
"""
from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter, defaultdict
from typing import Any

from veripo.records import PairRecord, RolloutRecord
from veripo.rewards import extract_think, format_ok
from veripo.verifier.config import VerifierConfig
from veripo.verifier.repetition import clean_repetition, repetition_check
from veripo.verifier.verdicts import Verdict

_ANSWER_BLOCK = re.compile(r"<answer>.*?</answer>", re.S)
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S)
_REJECT_ORDER = {"correct_but_inconsistent": 0, "repetitive": 1, "wrong_answer": 2, "bad_format": 3, "truncated": 3}
_CONTRASTABLE = set(_REJECT_ORDER) | {"inconsistent"}


def rejection_reason(v: Verdict) -> str | None:
    """Why a rollout can serve as 'rejected', or None (good, or merely unjudged/unknown)."""
    r = set(v.reasons)
    if "inconsistent" in r and v.correct and "repetitive" not in r and "bad_format" not in r:
        return "correct_but_inconsistent"
    for reason in ("repetitive", "wrong_answer", "inconsistent", "bad_format", "truncated"):
        if reason in r:
            return reason
    return None


def _pair(kind: str, chosen_ids: list[str], rejected: RolloutRecord, chosen_text: str,
          verdicts: dict[str, Verdict], reason: str, chosen: RolloutRecord | None = None) -> PairRecord:
    """``chosen``: the rollout that IS the chosen response (its token ids travel with the pair); None when the
    chosen response is text made here (reflective, cleaned): DPO encodes it and appends one end token."""
    ids = sorted(set(chosen_ids) | {rejected.rollout_id})
    key = "|".join([kind, ",".join(chosen_ids), rejected.rollout_id,
                    hashlib.sha1(chosen_text.encode()).hexdigest()])
    v = verdicts[rejected.rollout_id]
    return PairRecord(
        pair_id=hashlib.sha1(key.encode()).hexdigest()[:16], prompt_id=rejected.prompt_id, kind=kind,
        sample=rejected.sample, prompt=rejected.prompt, chosen=chosen_text, rejected=rejected.response,
        provenance={"chosen": list(chosen_ids), "rejected": [rejected.rollout_id], "reason": reason,
                    "group_id": rejected.group_id, "step": rejected.step, "problem_type": v.problem_type,
                    "verdicts": {i: verdicts[i].summary() for i in ids}},
        chosen_ids=list(chosen.token_ids) if chosen is not None and chosen.token_ids else None,
        rejected_ids=list(rejected.token_ids) if rejected.token_ids else None,
    )


def reflective_response(wrong: RolloutRecord, good: RolloutRecord, reflection: str) -> str | None:
    wrong_think, good_think = extract_think(wrong.response), extract_think(good.response)
    answers = _ANSWER_BLOCK.findall(good.response)
    if not wrong_think or not good_think or not answers:
        return None
    text = f"<think> {wrong_think} {reflection} {good_think} </think>{answers[-1]}"
    return text if format_ok(text) else None


def cleaned_response(rec: RolloutRecord, config: VerifierConfig) -> str | None:
    think = extract_think(rec.response)
    if not think:
        return None
    cleaned = clean_repetition(think)
    rc = config.repetition
    still = repetition_check(cleaned, rc.ngram, rc.max_ngram_ratio, rc.max_sentence_repeats, rc.min_ngrams)
    if not cleaned or cleaned == think or still.repetitive:
        return None
    text = _THINK_BLOCK.sub(lambda _: f"<think> {cleaned} </think>", rec.response, count=1).strip()
    return text if format_ok(text) else None


def build_group_pairs(records: list[RolloutRecord], verdicts: dict[str, Verdict],
                      config: VerifierConfig) -> tuple[list[PairRecord], str | None]:
    """Pairs of one group, and why the group gave none (``all_good``, ``no_good``, ...) or None."""
    pc = config.pairs
    recs = [r for r in records if r.rollout_id in verdicts]
    goods = sorted((r for r in recs if verdicts[r.rollout_id].good),
                   key=lambda r: (-verdicts[r.rollout_id].think_tokens, r.rollout_id))
    bads = [(rejection_reason(verdicts[r.rollout_id]), r) for r in recs]
    bads = sorted(((why, r) for why, r in bads if why),
                  key=lambda x: (_REJECT_ORDER.get(x[0], 2), verdicts[x[1].rollout_id].think_tokens, x[1].rollout_id))
    pairs: list[PairRecord] = []
    if "quality" in pc.kinds and goods:
        for i, (why, bad) in enumerate(bads[:pc.max_quality_per_prompt]):
            good = goods[i % len(goods)]
            pairs.append(_pair("quality", [good.rollout_id], bad, good.response, verdicts, why, chosen=good))
    if "reflective" in pc.kinds and goods:
        wrongs = [r for why, r in bads if not verdicts[r.rollout_id].correct and not verdicts[r.rollout_id].repetitive]
        made = 0
        for wrong in wrongs:
            if made >= pc.max_reflective_per_prompt:
                break
            good = goods[made % len(goods)]
            text = reflective_response(wrong, good, pc.reflection)
            if text:
                pairs.append(_pair("reflective", [wrong.rollout_id, good.rollout_id], wrong, text, verdicts,
                                   "failed_attempt_then_reflection"))
                made += 1
    if "single" in pc.kinds:
        made = 0
        for r in recs:
            v = verdicts[r.rollout_id]
            if made >= pc.max_single_per_prompt:
                break
            if v.repetitive and v.correct and v.format_ok:
                text = cleaned_response(r, config)
                if text:
                    pairs.append(_pair("single", [r.rollout_id], r, text, verdicts, "repetitive_vs_cleaned"))
                    made += 1
    if pairs:
        return pairs, None
    if recs and len(goods) == len(recs):
        return pairs, "all_good"
    if not goods:
        return pairs, "no_good_rollout"
    return pairs, "nothing_to_contrast"


def finalize_pairs(pairs: list[PairRecord], config: VerifierConfig) -> tuple[list[PairRecord], dict[str, Any]]:
    """Drop duplicate (prompt, chosen, rejected) triples, then balance problem types."""
    seen: set[str] = set()
    unique: list[PairRecord] = []
    for p in pairs:
        key = hashlib.sha1("\x00".join([p.prompt, p.chosen, p.rejected]).encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    stats: dict[str, Any] = {"duplicates_dropped": len(pairs) - len(unique), "dropped_for_balance": {}}
    ratio = config.pairs.balance_ratio
    by_type: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(unique):
        by_type[str(p.provenance.get("problem_type"))].append(i)
    if ratio > 0 and len(by_type) > 1:
        cap = math.ceil(ratio * min(len(v) for v in by_type.values()))
        rng = random.Random(config.pairs.seed)
        drop: set[int] = set()
        for ptype, idx in sorted(by_type.items()):
            if len(idx) > cap:
                dropped = rng.sample(idx, len(idx) - cap)
                drop.update(dropped)
                stats["dropped_for_balance"][ptype] = len(dropped)
        unique = [p for i, p in enumerate(unique) if i not in drop]
    stats["per_kind"] = dict(Counter(p.kind for p in unique))
    stats["per_problem_type"] = dict(Counter(str(p.provenance.get("problem_type")) for p in unique))
    return unique, stats
