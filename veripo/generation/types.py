"""Plain data types shared by the rollout engines (Hugging Face ``generate`` and vLLM)."""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class SamplingParams:
    """How to sample completions.

    temperature     0 = greedy; the learning probe found 0.7 best for a weak warm start, VerIPO uses 1.0
    top_p, top_k    nucleus / top-k truncation (1.0 / 0 = off)
    max_new_tokens  completion budget; a completion that hits it has finish_reason "length"
    stop_at_answer  stop right after ``</answer>`` (as VerIPO's format ends), besides the EOS token
    repetition_penalty  CTRL's penalty on tokens already present (1.0 = off, right for RL rollouts: they must be
                    samples of the policy; VerIPO's evaluation uses 1.05)
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    stop_at_answer: bool = True
    repetition_penalty: float = 1.0


@dataclasses.dataclass
class Completion:
    """One sampled response: decoded text (think/answer tags kept), its token ids, the per-token
    log-probs under the sampling distribution, and why it ended ("stop" or "length"). A leaf of a tree rollout
    (veripo/rollout/tree.py) also carries ``tree = {"path": [node ids, root excluded], "cuts": [token offset
    where each node's segment ends]}``. ``features``, when the engine was asked for them, is the policy's last-layer
hidden state at the end of the rollout (ARRoL's learned quality head reads it; never stored)."""

    text: str
    token_ids: list[int]
    logps: list[float]
    finish_reason: str
    tree: dict | None = None
    features: Any = dataclasses.field(default=None, repr=False, compare=False)  # [H] hidden state (ARRoL head)
