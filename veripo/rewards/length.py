"""Optional length reward and the token counter shared with the verifier's length check.

Shape (Video-R1's ``len_control``, spec §7, made per-response):

    length_reward = 1.0  if accuracy > 0.1  and  min_tokens <= L(think) <= max_tokens
                    0.0  otherwise

where ``L(think)`` is the token count of the ``<think>`` part (the whole response when there is no
``<think>`` block). Video-R1 adds 0.2 for completions of 320..512 tokens, so use weight 0.2 with
``min_tokens=320, max_tokens=512`` to reproduce it; Video-R1 additionally requires at least two such
rollouts in the group, which a per-response reward cannot see (leave it out or write a batched reward).
VerIPO documents no length reward (spec §4): it is off by default.

``overlong`` is DAPO's soft overlong punishment as a reward component (``veripo.algos.filters.overlong_penalty``):
0 up to ``max_length - cache_length`` tokens, then linearly down to ``-penalty_factor`` at ``max_length``. It reads
the rollout's sampled token count where the caller has it (the GRPO stage passes ``token_count``), else counts the
text's tokens. Turn it on with ``reward.weights.overlong: 1.0`` and ``reward.kwargs.overlong: {max_length: ...,
cache_length: ...}``.
"""
from __future__ import annotations

from typing import Any

from veripo.algos.filters import overlong_penalty
from veripo.rewards.accuracy import accuracy_reward
from veripo.rewards.answers import extract_think


def count_tokens(text: str | None, tokenizer: Any = None) -> int:
    """Tokens of ``text`` under ``tokenizer`` (anything with ``encode``), else whitespace words."""
    if not text:
        return 0
    if tokenizer is not None:
        return len(tokenizer.encode(text, add_special_tokens=False))
    return len(text.split())


def think_length(response: str, tokenizer: Any = None) -> int:
    think = extract_think(response)
    return count_tokens(think if think is not None else response, tokenizer)


def length_reward(response: str, sample: Any, min_tokens: int = 320, max_tokens: int = 512,
                  tokenizer: Any = None, min_accuracy: float = 0.1) -> float:
    if accuracy_reward(response, sample) <= min_accuracy:
        return 0.0
    return float(min_tokens <= think_length(response, tokenizer) <= max_tokens)


def overlong_reward(response: str, sample: Any, max_length: int = 20480, cache_length: int = 4096,
                    penalty_factor: float = 1.0, token_count: int | None = None, tokenizer: Any = None) -> float:
    """DAPO's overlong shaping of one response (see the module doc); ``token_count``: its sampled token count."""
    import torch

    n = token_count if token_count is not None else count_tokens(response, tokenizer)
    return float(overlong_penalty(torch.tensor([n]), max_length, cache_length, penalty_factor)[0])


overlong_reward.uses_token_count = True  # compute_rewards passes token_count= when it has the token counts
