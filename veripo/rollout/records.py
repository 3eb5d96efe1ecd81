"""A GRPO step's rollouts <-> the records of ``rollouts.jsonl`` (what the verifier reads and what a resumed run
replays). A record holds the rollout (text, token ids, sampling log-probs, finish reason), its rewards per
component, its advantage (the mean over the tokens it trains, for token-level estimators), whether the update
used it, and extras: the ARRoL ``p_hat`` and a tree leaf's ``tree`` (path and cuts), which replay restores.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import Tensor

from veripo.data.schema import Sample
from veripo.records import RolloutRecord
from veripo.generation.types import Completion


def rollout_index(record: RolloutRecord) -> tuple[int, str]:
    """A rollout's position in its group (``...-07`` -> 7; numeric, so groups larger than 100 sort right)."""
    tail = record.rollout_id.rsplit("-", 1)[-1]
    return (int(tail), "") if tail.isdigit() else (0, record.rollout_id)


def records_from_groups(step: int, samples: Sequence[Sample], groups: Sequence[Sequence[Completion]],
                        scores: dict[str, list[float]], advantages: Tensor, keep: Tensor, generate_s: float,
                        prompt_of: Callable[[Sample], str], extras: Sequence[dict[str, Any]] | None = None
                        ) -> list[RolloutRecord]:
    """One record per rollout, in group order. ``advantages``: one per rollout; ``prompt_of(sample)``: the
    prompt text as the policy saw it; ``extras``: extra fields per rollout (``p_hat``, ...)."""
    out = []
    i = 0
    for sample, comps in zip(samples, groups):
        prompt = prompt_of(sample)
        for j, c in enumerate(comps):
            extra = dict(extras[i]) if extras is not None else {}
            if c.tree:
                extra["tree"] = c.tree
            out.append(RolloutRecord(
                rollout_id=f"{step:06d}-{sample.problem_id}-{j:02d}", step=step,
                group_id=f"{step:06d}-{sample.problem_id}", sample=sample, prompt=prompt,
                response=c.text, token_ids=c.token_ids, logps=c.logps, rewards={k: v[i] for k, v in scores.items()},
                advantage=float(advantages[i]) if bool(keep[i]) else None, kept=bool(keep[i]),
                finish_reason=c.finish_reason, timings={"generate_s": generate_s / max(1, len(samples))},
                extra=extra))
            i += 1
    return out


def groups_from_records(records: Sequence[RolloutRecord], features: dict[str, Any] | None = None
                        ) -> tuple[list[Sample], list[list[Completion]]]:
    """A stored step's prompts and groups, each group as large as it was when sampled (trees included);
    ``features``: hidden states stored beside the store, by rollout id (ARRoL's learned head)."""
    features = features or {}
    by_group: dict[str, list[RolloutRecord]] = {}
    for r in records:
        by_group.setdefault(r.group_id, []).append(r)
    samples, groups = [], []
    for recs in by_group.values():
        recs.sort(key=rollout_index)
        samples.append(recs[0].sample)
        groups.append([Completion(r.response, r.token_ids, r.logps, r.finish_reason, tree=r.extra.get("tree"),
                                  features=features.get(r.rollout_id)) for r in recs])
    return samples, groups
