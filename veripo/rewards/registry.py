"""Reward functions by name: the built-ins and user functions given as an import path.

A reward function scores one response: ``fn(response: str, sample, **kwargs) -> float`` where
``sample`` is a :class:`~veripo.data.schema.Sample` (in GRPO and in the verifier alike). A function with the attribute
``batched = True`` scores a whole batch instead: ``fn(responses, samples, **kwargs) -> list[float]``
(use it for group-aware rewards). A function with ``uses_token_count = True`` also gets ``token_count=`` (the
response's sampled token count) when the caller knows it (the GRPO stage does): DAPO's ``overlong``.

    resolve_reward("accuracy")                  # built-in
    resolve_reward("my_pkg.rewards:brevity")    # user function, imported on demand
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from veripo.errors import ConfigError
from veripo.rewards.accuracy import accuracy_reward
from veripo.rewards.format import format_reward
from veripo.rewards.length import length_reward, overlong_reward

RewardFn = Callable[..., Any]

REWARD_FUNCTIONS: dict[str, RewardFn] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "length": length_reward,
    "overlong": overlong_reward,
}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: ``@register_reward("brevity")`` makes ``"brevity"`` usable in a RewardSpec."""
    def deco(fn: RewardFn) -> RewardFn:
        REWARD_FUNCTIONS[name] = fn
        return fn
    return deco


def resolve_reward(name: str) -> RewardFn:
    """A registered name, or ``"package.module:function"``; raises ``ConfigError`` saying what is wrong."""
    if name in REWARD_FUNCTIONS:
        return REWARD_FUNCTIONS[name]
    if ":" not in name:
        raise ConfigError(f"unknown reward {name!r}: use one of {sorted(REWARD_FUNCTIONS)} "
                         f"or an import path 'package.module:function'")
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"reward {name!r}: cannot import module {module_name!r} ({e})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"reward {name!r}: module {module_name!r} has no callable {attr!r}")
    return fn
