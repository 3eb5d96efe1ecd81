"""Format reward: the strict MM-EUREKA check (``reward_func_qwen_instruct.py``, spec §4).

``format_reward(response) = 1.0`` iff the response contains exactly one each of ``<think>``,
``</think>``, ``<answer>``, ``</answer>`` and matches ``<think>(.+?)</think>\\s*<answer>.+?</answer>``
(leading/trailing whitespace ignored); else 0.0. MM-EUREKA's 0.5 is applied as the reward's weight
(:class:`~veripo.rewards.combine.RewardSpec`, default format weight 0.5), not here.
"""
from __future__ import annotations

import re
from typing import Any

FORMAT_RE = re.compile(r"^<think>(.+?)</think>\s*<answer>(.+?)</answer>$", re.S)
TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def format_ok(response: str | None) -> bool:
    if not response:
        return False
    if any(response.count(tag) != 1 for tag in TAGS):
        return False
    return FORMAT_RE.match(response.strip()) is not None


def format_reward(response: str, sample: Any = None) -> float:
    return 1.0 if format_ok(response) else 0.0
