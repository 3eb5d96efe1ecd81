"""The main job: `veripo demo --quick` runs the whole method and reports that it learned."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run([sys.executable, "-m", "veripo.cli", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_quick_demo_writes_the_report_and_plots(quick_demo):
    out, stdout = quick_demo
    report = (out / "report.md").read_text()
    assert "Held-out results after each stage" in report
    for png in ("stages.png", "grpo_curves.png", "times.png"):
        assert (out / png).stat().st_size > 1000, png
    assert "held-out accuracy" in stdout and "finished in" in stdout
    for it in (1, 2):
        for stage in ("grpo", "verify", "dpo"):
            assert (out / "loop" / f"iter-{it}" / stage).is_dir()
    assert (out / "loop" / "iter-1" / "grpo" / "rollouts.jsonl").stat().st_size > 0


def test_quick_demo_learns(quick_demo):
    """Accuracy of answers sampled at the rollout temperature (what GRPO optimises) beats the warm start
    after GRPO and after the loop; greedy accuracy stays clearly above chance; each DPO stage lowers the
    share of sampled answers the judge finds inconsistent."""
    out, _ = quick_demo
    rows = {r["after"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    start = rows["start"]
    assert rows["iter-1/grpo"]["sampled_accuracy"] > start["sampled_accuracy"], rows
    assert rows["iter-2/dpo"]["sampled_accuracy"] > start["sampled_accuracy"], rows
    assert rows["iter-1/grpo"]["accuracy"] >= 0.5, rows  # 4 options: chance is 25%
    for it in (1, 2):
        before, after = rows[f"iter-{it}/grpo"], rows[f"iter-{it}/dpo"]
        assert after["sampled_inconsistency_rate"] < before["sampled_inconsistency_rate"], (it, rows)
    checks = json.loads((out / "report.json").read_text())["checks"]
    assert all(ok for name, ok, _detail in checks if "sampled" in name), checks


def test_demo_refuses_a_foreign_directory(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    proc = subprocess.run([sys.executable, "-m", "veripo.cli", "demo", "--quick", "--out", str(foreign)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert (foreign / "thesis.tex").exists()
