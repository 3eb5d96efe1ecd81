"""The two files the stages talk through: ``rollouts.jsonl`` (GRPO -> verifier) and ``pairs.jsonl``
(verifier -> DPO). One JSON object per line; unknown keys are kept, so newer writers stay readable.

RolloutRecord — one sampled response, appended by the GRPO stage *before* it is trained on:
    rollout_id   unique id, ``"{step}-{problem_id}-{index}"``
    step         GRPO step that sampled it
    group_id     id shared by the G rollouts of one prompt at one step
    sample       the data row (``veripo.data.schema.Sample.to_dict()``): problem, options, solution, path...; in
                 code a :class:`~veripo.data.schema.Sample`, made once where the row is read (``from_dict``)
    prompt       the user text the policy saw (question + options + instruction)
    response     the completion decoded from ``token_ids`` (special tokens skipped, stripped; tags kept): what the
                 verifier judges
    token_ids    the completion's token ids as sampled, its end token included (``<|im_end|>``, or the piece that
                 completed ``</answer>`` when the rollout stopped there; none when cut at the length budget);
    logps        per-token log-probs under the sampling policy
    rewards      {"accuracy": .., "format": .., ..., "total": ..}
    advantage    the scalar advantage used (null when filtered out); kept: trained on or masked out
    finish_reason "stop" | "length";  timings: {"generate_s": .., ...}

PairRecord — one chosen/rejected pair for the DPO stage:
    pair_id, prompt_id, kind ("quality" | "reflective" | "single"), sample (data row), prompt,
    chosen, rejected (full response texts), provenance: {"chosen": [rollout ids], "rejected": [rollout ids],
    "verdicts": {rollout_id: {...}}, "reason": "why this rejected was picked"},
    chosen_ids, rejected_ids: the token ids DPO trains on when the response IS a rollout (its ``token_ids``,
    end token included, never decoded and re-encoded); null for a response made from text (a reflective
    combination, a cleaned repetition): DPO then encodes the text and appends one ``<|im_end|>``, as SFT does.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

from veripo.data.schema import Sample


class _Record:
    """Shared JSON round trip: unknown keys travel in ``extra`` and come back flat; ``sample`` is a
    :class:`Sample` in code and its row (``Sample.to_dict()``) on disk."""

    def __post_init__(self) -> None:
        if not isinstance(self.sample, Sample):  # type: ignore[attr-defined]
            raise TypeError(f"{type(self).__name__}.sample must be a Sample, got {type(self.sample).__name__} "  # type: ignore[attr-defined]
                            "(a row read from a file: Sample.from_dict(row))")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        d["sample"] = self.sample.to_dict()  # type: ignore[attr-defined]
        d.update(d.pop("extra"))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        names = {f.name for f in fields} - {"extra"}
        required = [f.name for f in fields
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"{cls.__name__} is missing field(s): {', '.join(missing)}")
        fields_ = {k: v for k, v in d.items() if k in names}
        fields_["sample"] = sample_of_row(d["sample"])
        return cls(**fields_, extra={k: v for k, v in d.items() if k not in names})


def sample_of_row(row: Any) -> Sample:
    """A record's ``sample`` row -> :class:`Sample`, by the data loader's rules; ``ValueError`` saying what is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"'sample' must be a JSON object (the data row), got {type(row).__name__} {str(row)[:40]!r}")
    try:
        return Sample.from_dict(row)
    except ValueError as e:
        raise ValueError(f"sample: {e}") from None


@dataclasses.dataclass
class RolloutRecord(_Record):
    rollout_id: str
    step: int
    group_id: str
    sample: Sample
    prompt: str
    response: str
    token_ids: list[int] = dataclasses.field(default_factory=list)
    logps: list[float] = dataclasses.field(default_factory=list)
    rewards: dict[str, float] = dataclasses.field(default_factory=dict)
    advantage: float | None = None
    kept: bool = True
    finish_reason: str = "stop"
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def prompt_id(self) -> str:
        return self.sample.problem_id


@dataclasses.dataclass
class PairRecord(_Record):
    pair_id: str
    prompt_id: str
    kind: str
    sample: Sample
    prompt: str
    chosen: str
    rejected: str
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    chosen_ids: list[int] | None = None
    rejected_ids: list[int] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
