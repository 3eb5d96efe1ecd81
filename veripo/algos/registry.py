"""Name -> function registries (verl's ``register_adv_est`` pattern, with typo-proof errors).

    ESTIMATORS = Registry("advantage estimator")

    @ESTIMATORS.register("grpo")
    def grpo(rewards, group_ids, **kw): ...

    ESTIMATORS.get("grpo")        # the function
    ESTIMATORS.get("gpro")        # UnknownNameError: unknown advantage estimator 'gpro'; valid: ...

Registering a *different* function under a name that is taken raises ``DuplicateNameError``; registering
the same function again (a module imported twice) is a no-op. Names are case-sensitive.
"""
from __future__ import annotations

from typing import Callable, Iterable, TypeVar

from veripo.errors import VeripoError

F = TypeVar("F", bound=Callable)


class UnknownNameError(VeripoError, KeyError):
    """Asked for a name that no function is registered under; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(VeripoError, ValueError):
    """Two different functions were registered under the same name."""


class Registry:
    """A named table of functions of one kind (advantage estimators, policy losses, preference losses)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._table: dict[str, Callable] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, aliases: Iterable[str] = ()) -> Callable[[F], F]:
        """Decorator: register the function under ``name`` (and each alias, which resolve to ``name``)."""

        def wrap(fn: F) -> F:
            for key in (name, *aliases):
                taken = self._table.get(key) or self._table.get(self._aliases.get(key, ""))
                if taken is not None and taken is not fn:
                    raise DuplicateNameError(
                        f"{self.kind} {key!r} is already registered to {taken.__module__}.{taken.__qualname__}"
                    )
            self._table[name] = fn
            for alias in aliases:
                self._aliases[alias] = name
            return fn

        return wrap

    def canonical(self, name: str) -> str:
        """The registered name that ``name`` (a name or an alias) stands for."""
        if name in self._table:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names(aliases=True))}")

    def get(self, name: str) -> Callable:
        return self._table[self.canonical(name)]

    def names(self, aliases: bool = False) -> list[str]:
        keys = list(self._table)
        if aliases:
            keys += list(self._aliases)
        return sorted(keys)

    def __contains__(self, name: object) -> bool:
        return name in self._table or name in self._aliases
