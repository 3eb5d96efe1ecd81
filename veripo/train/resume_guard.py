"""``--resume`` refuses a changed config: the run's saved ``config.yaml`` against the config given now.

A resumed run must be the run it resumes, so every field that can change its results must be equal. Ignored
(:data:`IGNORED`): only fields that cannot change what is trained or sampled -- where and how often
checkpoints are written (``out_dir``, ``save_every``, ``keep_last``), whether TensorBoard also logs
(``tensorboard``), and the collective timeout (``dist.timeout_minutes``). Everything else -- including
``steps`` (the learning-rate schedule depends on it) and data paths -- counts; ``--force-config`` accepts the
change (it is logged, and the new config is then saved).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from veripo.config import config_record
from veripo.errors import VeripoError

log = logging.getLogger(__name__)

IGNORED = frozenset({"out_dir", "save_every", "keep_last", "tensorboard", "dist.timeout_minutes",
                     "run.out_dir", "run.save_every", "run.keep_last", "run.tensorboard"})
CONFIG_FILE = "config.yaml"


class ConfigMismatch(VeripoError):
    """``--resume`` was given a config that differs from the one the run was started with."""


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, saved value, new value)`` for each field that differs, :data:`IGNORED` left out."""
    a, b = _flat(old), _flat(new)
    missing = object()
    return [(k, a.get(k, missing), b.get(k, missing)) for k in sorted(set(a) | set(b))
            if k not in IGNORED and a.get(k, missing) != b.get(k, missing)]


def check_resume_config(run_dir: str | Path, cfg: Any, force: bool = False) -> list[str]:
    """Compare ``run_dir/config.yaml`` with ``cfg``; raise :class:`ConfigMismatch` (one line, listing the
    changed keys with old -> new) unless ``force``. Returns the changed keys (empty when none or no saved
    config)."""
    saved = Path(run_dir) / CONFIG_FILE
    if not saved.exists():
        return []
    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigMismatch(f"{saved}: cannot read the saved config ({type(e).__name__}); pass --force-config "
                             "to resume with the config given now") from None
    new = config_record(cfg)  # what save_config writes: normalised, credentials redacted
    changes = config_changes(old, new)
    if not changes:
        return []
    desc = ", ".join(f"{k}: {_fmt(o)} -> {_fmt(n)}" for k, o, n in changes)
    if not force:
        raise ConfigMismatch(f"{saved}: --resume with a different config ({len(changes)} changed: {desc}); "
                             "resume with the saved config, or pass --force-config to accept the change")
    log.warning("%s: resuming with a changed config (--force-config): %s", saved, desc)
    return [k for k, _, _ in changes]


def _fmt(value: Any) -> str:
    return _short(value) if type(value) is not object else "(absent)"
