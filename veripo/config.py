"""Typed configs: dataclasses loaded from YAML, with dotted command-line overrides.

Every stage has a dataclass config whose fields carry their documentation in
``field(metadata={"help": ...})``; ``describe(cls)`` prints them (``veripo <cmd> --show-config``).

    cfg = load_config(GRPOConfig, "run.yaml", ["optim.lr=2e-4", "rollout.group_size=8"])

Rules: unknown keys are an error that names the key and lists the valid ones; values from YAML or the
command line are converted to the field's declared type (``"2e-4"`` -> float, ``"true"`` -> bool,
``"[a,b]"`` -> list); nested dataclasses nest as mappings.

Value rules: a config section may define ``check(self, prefix="")``, which raises ``ConfigError`` (via
``require``) for an impossible value, naming the dotted key (``prefix`` + field), the value and the fix.
``from_dict`` runs it on every section it builds, so every command and every loop stage fails on a bad value
before any model is loaded; ``check_config(cfg)`` runs them all on a config built in code.
"""
from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import yaml

from veripo.errors import ConfigError, PathError

T = TypeVar("T")
__all__ = ["ConfigError", "apply_overrides", "check_config", "component_errors", "describe", "doc", "from_dict", "load_config", "merge",
           "parse_override", "read_yaml", "require", "require_file", "save_config", "to_dict"]


def require(ok: bool, key: str, value: Any, fix: str) -> None:
    """A value rule: unless ``ok``, raise ``ConfigError("key=value: fix")``."""
    if not ok:
        raise ConfigError(f"{key}={value!r}: {fix}")


@contextlib.contextmanager
def component_errors(prefix: str) -> Iterator[None]:
    """Inside: a ``ValueError`` from a component that checks its own settings (controllers, pruners, trees: their
    messages start with the dotted key, e.g. ``rollout.prune_kwargs: ...``) becomes a ``ConfigError`` under ``prefix``."""
    try:
        yield
    except ValueError as e:
        raise ConfigError(f"{prefix}{e}") from None


def require_file(path: str | None, key: str, what: str, required: bool = True) -> None:
    """An input rule: ``path`` names an existing file (``PathError``); empty is an error when ``required``."""
    if not path:
        require(not required, key, path, f"give {what}")
    elif not Path(path).is_file():
        raise PathError(f"{key}={path!r}: no such file ({what})")


def _run_check(obj: Any, prefix: str, method: str = "check") -> None:
    check = getattr(obj, method, None)
    if callable(check):
        check(prefix)


def check_config(cfg: Any, prefix: str = "", inputs: bool = False) -> None:
    """Run the value rules (``check``) of ``cfg`` and of every section nested in it; raises ``ConfigError``.
    ``inputs``: also the input rules (``check_inputs``: the data files a stage reads exist), for a complete stage
    config (a command's, a trainer's; not the partial sections the loop validates at load)."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_config(value, f"{prefix}{f.name}.", inputs)
    _run_check(cfg, prefix)
    if inputs:
        _run_check(cfg, prefix, "check_inputs")


def doc(help: str, default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its documentation: ``lr: float = doc("Peak learning rate.", 1e-6)``."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _convert(value: Any, tp: Any, key: str) -> Any:
    tp, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional or tp is Any:
            return None
        raise ConfigError(f"{key}: null is not allowed (type {getattr(tp, '__name__', tp)})")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for section {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp in (int, float):
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(float(value)) if tp is int and isinstance(value, str) and "e" in value.lower() else tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}") from None
    if tp is str:
        return str(value)
    if tp is Path:
        return Path(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) mapping, converting and checking every key."""
    if data is None:
        data = {}
    data = _moved_keys(cls, data, prefix)
    data = _merged_defaults(cls, data)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s} (valid keys in {prefix or 'the top level'}: {', '.join(sorted(names))})"
        )
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except ConfigError as e:  # a section that checks itself on construction (frozen ones)
        raise ConfigError(f"{prefix}{e}") from None
    _run_check(obj, prefix)
    return obj


def _merged_defaults(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Mapping fields a config class lists in ``MERGE_DEFAULTS`` (e.g. the demo's ``task`` and ``loop``): a given
    value is deep-merged into the field's default, so ``loop.grpo.run.steps=5`` changes one setting instead of
    replacing the whole default section. Other mapping fields (``reward.weights``, ``*_kwargs``) are replaced."""
    names = getattr(cls, "MERGE_DEFAULTS", ())
    if not names or not any(isinstance(data.get(k), dict) for k in names):
        return data
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = dict(data)
    for k in names:
        if isinstance(out.get(k), dict) and fields[k].default_factory is not dataclasses.MISSING:
            out[k] = merge(fields[k].default_factory(), out[k])
    return out


def _moved_keys(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Keys a config class has moved (``MOVED_KEYS = {"out_dir": "run.out_dir"}`` on the class): the old spelling
    is still read, with a warning naming the new one, unless both are given."""
    moved = getattr(cls, "MOVED_KEYS", None)
    if not moved or not any(k in data for k in moved):
        return data
    import logging

    data = dict(data)
    for old, new in moved.items():
        if old not in data:
            continue
        section, key = new.split(".")
        target = dict(data.get(section) or {})
        if key in target:
            raise ConfigError(f"{prefix}{old} and {prefix}{new} are both given: {old} is the old name of {new}")
        logging.getLogger(__name__).warning("config key %s%s is now %s%s", prefix, old, prefix, new)
        target[key] = data.pop(old)
        data[section] = target
    return data


def to_dict(obj: Any) -> Any:
    """A dataclass config as plain YAML-able data (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=2e-4"`` -> (["optim", "lr"], 2e-4) with the value parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip().lstrip("-")
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set dotted keys in a nested mapping (creating sections as needed); returns ``data``."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
        node[path[-1]] = value
    return data


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for k, v in (update or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = (),
                base: dict[str, Any] | None = None) -> T:
    """Defaults of ``cls`` <- ``base`` <- YAML file ``path`` <- dotted ``overrides``."""
    data = merge(base or {}, read_yaml(path) if path else {})
    return from_dict(cls, apply_overrides(data, overrides))


def config_record(cfg: Any) -> dict[str, Any]:
    """What :func:`save_config` writes, as a dict: the config with credentials redacted
    (:func:`veripo.redact.redact_tree`: URL passwords, secret query values, ``api_key``-like fields). A resumed
    run compares this record, never the raw config, with the saved file."""
    from veripo.redact import redact_tree

    return yaml.safe_load(yaml.safe_dump(redact_tree(to_dict(cfg)), sort_keys=False))


def save_config(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as YAML (atomically), credentials redacted (:func:`config_record`)."""
    from veripo.io_utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_record(cfg), sort_keys=False))


def describe(cls: type, prefix: str = "") -> str:
    """One line per field (dotted name, type, default, help), nested sections expanded."""
    lines = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        inner, _ = _unwrap_optional(tp)
        if dataclasses.is_dataclass(inner):
            lines.append(f"{prefix}{f.name}:  [{inner.__name__}] {f.metadata.get('help', '')}")
            lines.append(describe(inner, prefix + f.name + "."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "<required>"
        tname = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
        lines.append(f"{prefix}{f.name} ({tname}, default {default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines)
