"""The package ships every sub-package, and every `veripo` sub-command loads and explains itself."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from veripo.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_subpackage():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    mapping = project["tool"]["setuptools"]["package-dir"]
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "veripo").rglob("__init__.py")}
    for name, folder in mapping.items():
        found |= {name + "".join("." + part for part in p.parent.relative_to(REPO / folder).parts)
                  for p in (REPO / folder).rglob("__init__.py")}
    assert found == listed, f"missing {sorted(found - listed)}, stale {sorted(listed - found)}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out) > 100


def test_unknown_command_and_bad_override_fail_clearly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "veripo.cli", "nonsense"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown command" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "veripo.cli", "grpo", "rollout.group_sise=8"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown config key rollout.group_sise" in proc.stderr
    assert "\n  File " not in proc.stderr  # a one-line error, not a traceback


def test_shipped_example_configs_are_valid_for_every_stage_and_iteration():
    """scripts/configs/*.yaml are starting points for GPU runs: every field must exist in the stage configs."""
    from pathlib import Path

    from veripo.config import load_config
    from veripo.loop.config import LoopConfig, stage_section

    files = sorted((Path(__file__).resolve().parents[1] / "scripts" / "configs").glob("*.yaml"))
    assert files
    for path in files:
        cfg = load_config(LoopConfig, str(path), ["train_file=rows.jsonl"])
        for iteration in range(1, cfg.iterations + 1):
            for stage in ("grpo", "verify", "dpo"):
                assert stage_section(cfg, stage, iteration), (path.name, stage, iteration)
