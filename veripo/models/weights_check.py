"""Refuse to save weights no trained network has: NaN/inf, or a magnitude beyond ``max_abs`` (an overflowed
update such as ``lr=1e10``). Called by :func:`veripo.models.lora.save_policy`, hence by every checkpoint and final
save; the training-time guard that skips such steps is :mod:`veripo.train.nonfinite`."""
from __future__ import annotations

import os
from typing import Iterable

import torch

from veripo.errors import VeripoError

DEFAULT_MAX_ABS = 1e6


class NonFiniteError(VeripoError):
    """Training produced NaN/inf (or overflowed weights) and cannot go on / be saved."""


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise VeripoError(f"{name}={value!r} is not a number") from None


def first_nonfinite(named: Iterable[tuple[str, torch.Tensor]], max_abs: float | None = None) -> str | None:
    """``"name (why)"`` of the first tensor with a NaN/inf value or a value beyond ``max_abs``; else ``None``."""
    limit = _env_number("VERIPO_MAX_ABS_WEIGHT", DEFAULT_MAX_ABS) if max_abs is None else max_abs
    for name, t in named:
        if not torch.is_tensor(t) or not t.is_floating_point() or t.numel() == 0:
            continue
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            n = int((~finite).sum())
            return f"{name} ({n} of {t.numel()} values are NaN/inf)"
        biggest = float(t.detach().abs().max())
        if limit and biggest > limit:
            return f"{name} (|w| reaches {biggest:.3g}, over {limit:.3g}: an overflowed update)"
    return None


def check_finite_weights(model=None, state_dict: dict[str, torch.Tensor] | None = None, where: str = "",
                         max_abs: float | None = None) -> None:
    """Raise :class:`NonFiniteError` naming the first bad parameter of ``state_dict`` (or ``model``)."""
    named = state_dict.items() if state_dict is not None else model.named_parameters()
    bad = first_nonfinite(named, max_abs)
    if bad:
        raise NonFiniteError(f"refusing to save non-finite weights{' to ' + str(where) if where else ''}: "
                             f"parameter {bad}; lower optim.lr (the last good checkpoint is kept)")
