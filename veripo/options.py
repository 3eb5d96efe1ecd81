"""User-given keyword options (``algo.advantage_kwargs``, ``algo.loss_kwargs``, ``loss.hparams``,
``rollout.controller_kwargs`` ...) checked against what the function they go to accepts, at start-up.

    take_options(kwargs, ("alpha", "bonus_lambda"), "rollout.controller_kwargs (xrpo)")   # a fixed list
    check_options(kwargs, [estimator], "algo.advantage_kwargs", computed=("seq_logps",))  # a signature

A function's options are its parameters that have a default (required ones are the caller's inputs). Its
``**kwargs`` count as ignored unless the function declares where they go with ``@forwards_kwargs(target, ...)``,
whose options are then its options too. A misspelt key is a ``ConfigError`` naming the valid ones.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping, Sequence

from veripo.errors import ConfigError


def take_options(kwargs: Mapping[str, Any], allowed: Sequence[str], what: str) -> dict[str, Any]:
    """``kwargs`` as a dict when every key is in ``allowed``; else a ConfigError naming the unknown and valid keys."""
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"{what}: unknown option(s) {', '.join(unknown)} (valid: {', '.join(sorted(allowed))})")
    return dict(kwargs)


def forwards_kwargs(*targets: Callable) -> Callable:
    """Decorator: this function passes its ``**kwargs`` on to ``targets`` (their options are its options)."""
    def wrap(fn: Callable) -> Callable:
        fn.forwards_kwargs_to = targets  # type: ignore[attr-defined]
        return fn
    return wrap


def keyword_options(fn: Callable) -> set[str]:
    """The keyword options ``fn`` accepts: parameters with a default, plus those of its ``forwards_kwargs`` targets."""
    params = inspect.signature(fn).parameters.values()
    names = {p.name for p in params if p.default is not inspect.Parameter.empty
             and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for target in getattr(fn, "forwards_kwargs_to", ()):
        names |= keyword_options(target)
    return names


def takes_any_keyword(fn: Callable) -> bool:
    """Whether ``fn`` has ``**kwargs`` that it does not declare (a user function: its options cannot be checked)."""
    return (not hasattr(fn, "forwards_kwargs_to")
            and any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()))


def check_options(kwargs: Mapping[str, Any], fns: Iterable[Callable], what: str, computed: Iterable[str] = (),
                  set_by: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> None:
    """Every key of ``kwargs`` must be an option of one of ``fns`` (or in ``extra``). ``computed``: options the
    caller fills in itself (not the user's to set); ``set_by``: option -> the config key that sets it."""
    set_by = dict(set_by or {})
    computed = set(computed)
    for key in sorted(kwargs):
        if key in set_by:
            raise ConfigError(f"{what}.{key}: this is set by {set_by[key]}; set it there instead")
        if key in computed:
            raise ConfigError(f"{what}.{key}: the trainer computes this input itself; remove it")
    valid = set(extra)
    for fn in fns:
        valid |= keyword_options(fn)
    valid -= computed | set(set_by)
    take_options(kwargs, sorted(valid), what)
