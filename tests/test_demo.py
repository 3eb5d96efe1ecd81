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
                          capture_output=True, text=True, timeout=2400)  # a hang guard: ~2 min idle, 26 min at load 16
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_quick_demo_writes_the_report_and_plots(quick_demo):
    out, stdout = quick_demo
    report = (out / "report.md").read_text()
    assert "Held-out results after each stage" in report
    for png in ("stages.png", "per_type.png", "grpo_curves.png", "times.png"):
        assert (out / png).stat().st_size > 1000, png
    assert "Held-out accuracy per task type after each stage" in report
    assert "## What was not learned" in report and "counting" in report
    assert "held-out accuracy" in stdout and "finished in" in stdout
    for it in (1, 2):
        for stage in ("grpo", "verify", "dpo"):
            assert (out / "loop" / f"iter-{it}" / stage).is_dir()
    assert (out / "loop" / "iter-1" / "grpo" / "rollouts.jsonl").stat().st_size > 0


def test_quick_demo_learns(quick_demo):
    """What the quick run (12 GRPO steps per iteration, a warm start of at most 250 steps) shows on its own:
    greedy accuracy clearly above chance, colour learned, and the first DPO stage lowering the share of sampled
    answers the judge finds inconsistent. The GRPO gains per type are the full demo's claim (`veripo demo
    --seeds 0,1,2`, docs/demo-results.md): 12 steps on the mixed task moved sampled accuracy by a few points
    either way."""
    out, _ = quick_demo
    data = json.loads((out / "report.json").read_text())
    rows = {r["after"]: r for r in data["rows"]}
    assert set(rows) == {"start", "iter-1/grpo", "iter-1/dpo", "iter-2/grpo", "iter-2/dpo"}
    for r in rows.values():  # 4 options: chance is 25%. Measured after the twin-kit merge (2026-12-02, seed 0):
        assert r["accuracy"] >= 0.33, rows  # 37.5-41.7% greedy at every stage (it was 56-58% on the older kit)
    before, after = rows["iter-1/grpo"], rows["iter-1/dpo"]
    # the twin kit's warm start writes few inconsistent answers (3.2% sampled before DPO 1, 0.5% after): DPO must
    # not raise the rate; the clear drop of the older kit (46% -> 26%) is not shown by this quick run any more
    assert after["sampled_inconsistency_rate"] <= before["sampled_inconsistency_rate"], rows
    names = [name for name, _ok, _detail in data["checks"]]
    assert "GRPO beats the warm start (sampled accuracy)" in names
    assert "direction: GRPO raises sampled accuracy (warm start -> iteration 1 GRPO)" in names


def test_quick_demo_reports_every_task_type_after_every_stage(quick_demo):
    """The default task mixes colour, direction and order; each stage's held-out accuracy is split by type,
    greedy and sampled; the warm start stopped before the ceiling."""
    out, stdout = quick_demo
    data = json.loads((out / "report.json").read_text())
    per_type = data["per_type"]
    assert [r["after"] for r in per_type] == [r["after"] for r in data["rows"]]
    for r in per_type:
        assert set(r["greedy"]) == set(r["sampled"]) == {"color", "direction", "order"}, r
    assert per_type[-1]["greedy"]["color"] >= 0.5  # colour is learned even in the quick run
    assert data["rows"][0]["sampled_accuracy"] < 0.95  # not at the ceiling after the warm start
    assert "color greedy" in (out / "per_type.md").read_text() and "what was not learned" in stdout


def test_seeds_aggregate_gives_mean_and_spread():
    from veripo.demo.seeds import aggregate, parse_seeds, spread

    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert spread([0.5, 0.7]) == pytest.approx({"mean": 0.6, "std": 0.1414, "min": 0.5, "max": 0.7, "n": 2}, abs=1e-3)
    run = lambda acc: {"rows": [{"after": "start", "accuracy": acc}],  # noqa: E731
                       "per_type": [{"after": "start", "greedy": {"order": acc}, "sampled": {}}]}
    agg = aggregate({0: run(0.25), 1: run(0.75)})
    assert agg[0]["after"] == "start" and agg[0]["accuracy"]["mean"] == 0.5 and agg[0]["order greedy"]["max"] == 0.75


def test_demo_refuses_a_foreign_directory(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    proc = subprocess.run([sys.executable, "-m", "veripo.cli", "demo", "--quick", "--out", str(foreign)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert (foreign / "thesis.tex").exists()


def test_per_type_rows_checks_and_what_was_not_learned(tmp_path):
    """Greedy per type from each eval's results.json, sampled per type from the stage summary; a type left near
    chance is named as not learned, and a temporal type whose sampled accuracy GRPO did not raise fails its check."""
    from veripo.demo.per_type import not_learned, type_checks, type_rows, type_table

    def ev(key, greedy, sampled):
        (tmp_path / key).mkdir(parents=True)
        (tmp_path / key / "results.json").write_text(json.dumps({"tasks": {t: {"score": v} for t, v in greedy.items()}}))
        return key, {"summary": {"sampled_accuracy_by_task": sampled}}

    stages = dict([ev("eval-start", {"color": 0.6, "order": 0.5}, {"color": 0.5, "order": 0.45}),
                   ("iter-1/grpo", {"summary": {}}),
                   ev("iter-1/eval-grpo", {"color": 0.9, "order": 0.3}, {"color": 0.8, "order": 0.3})])
    rows = type_rows({"stages": stages}, tmp_path)
    assert [r["after"] for r in rows] == ["start", "iter-1/grpo"]
    assert rows[1]["greedy"] == {"color": 0.9, "order": 0.3} and rows[0]["sampled"]["order"] == 0.45
    checks = {name: ok for name, ok, _ in type_checks(rows)}
    assert checks["order: GRPO raises sampled accuracy (warm start -> iteration 1 GRPO)"] is False
    assert checks["color: clearly above chance (25% + 15%) after the loop (greedy)"] is True
    assert "order: the GRPO stages raise sampled accuracy (sum of each stage's change)" not in checks  # one stage
    later = dict(stages, **dict([ev("iter-1/eval-dpo", {"color": 0.9, "order": 0.3}, {"color": 0.8, "order": 0.2}),
                                 ev("iter-2/eval-grpo", {"color": 0.9, "order": 0.5}, {"color": 0.8, "order": 0.4})]))
    summed = {name: (ok, why) for name, ok, why in type_checks(type_rows({"stages": later}, tmp_path))}
    # GRPO: -15 then +20 points (DPO's -10 in between is not counted): raised overall, though iteration 1 lowered it
    assert summed["order: the GRPO stages raise sampled accuracy (sum of each stage's change)"] == (
        True, "-15.0 + +20.0 = +5.0 points")
    missing = not_learned(rows, ["color", "order"])
    assert any(m.startswith("order: not learned") for m in missing) and not any(m.startswith("color") for m in missing)
    assert "| start | 60.0% | 50.0% | 50.0% | 45.0% |" in type_table(rows)


def test_compare_script_tables_and_plot(tmp_path):
    """scripts/compare_loop_vs_grpo.py: one row per seed and arm, mean ± std per arm, who wins, and the plot
    (the runs themselves are the full demo's; here fake summaries)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "compare_loop_vs_grpo.py"
    spec = importlib.util.spec_from_file_location("compare_loop_vs_grpo", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def arm(acc, seconds):
        return {"summary": {"accuracy": acc, "sampled_accuracy": acc, "sampled_inconsistency_rate": 0.2,
                            "response_tokens": 25.0, "sampled_accuracy_by_task": {"order": acc}},
                "train_seconds": seconds, "grpo_steps": 10,
                "per_stage": [{"after": "eval-start", "response_tokens": 24.0, "sampled_inconsistency_rate": 0.4}]}

    results = [{"seed": s, "warm_start": {"accuracy": 0.5}, "loop": arm(0.8, 100.0), "grpo": arm(0.7 + 0.2 * s, 101.0),
                "loop_reflective": arm(0.75, 99.0)} for s in (0, 1)]
    md = mod.markdown(results)
    assert "| 0 | loop | 100.0 | 10 | 80.0% | 80.0% | 20.0% | 25.0 | order 80% |" in md
    assert "The loop has the higher sampled accuracy on 1 of 2 seeds." in md
    assert "| loop | 80.0% ± 0.0 (80.0..80.0) |" in md and "quality + reflective pairs" in md
    mod.plot(results, tmp_path / "compare.png")
    assert (tmp_path / "compare.png").stat().st_size > 1000


def test_a_dotted_override_changes_one_demo_setting_and_keeps_the_rest():
    """Before: ``task.types=[direction]`` replaced the whole task section (frames 8, 256 rows, other flawed
    fractions: the task generator's defaults) and ``loop.grpo.run.steps=5`` dropped every other GRPO setting."""
    from veripo.demo.config import DemoConfig, demo_config

    default = DemoConfig()
    task = demo_config(False, ["task.types=[direction]"]).task
    assert task == {**default.task, "types": ["direction"]}
    from veripo.config import from_dict
    from veripo.data.synthetic import SynthSpec

    # the demo's type weights must survive a change of types (they did not, as a list in the order of the types)
    assert from_dict(SynthSpec, task).mix == (2.0,)
    assert from_dict(SynthSpec, {**task, "types": ["color", "order"]}).mix == (1.0, 1.0)
    assert from_dict(SynthSpec, default.task).mix == (1.0, 2.0, 1.0)
    grpo = demo_config(False, ["loop.grpo.run.steps=5"]).loop["grpo"]
    assert grpo["run"]["steps"] == 5 and grpo["rollout"] == default.loop["grpo"]["rollout"]
    assert grpo["optim"] == default.loop["grpo"]["optim"] and grpo["run"]["save_every"] == 20
    quick = demo_config(True, ["loop.grpo.run.steps=5"])
    assert quick.loop["grpo"]["optim"]["lr"] == 1e-4 and quick.sft["run"]["steps"] == 250


def test_dpo_cost_script_trains_one_more_dpo_arm_on_the_demo_pairs(quick_demo, tmp_path):
    """scripts/bench_dpo_cost.py on the quick demo's first iteration: the demo's own DPO stage (2 epochs) is
    reused, one shorter arm is trained on the same pairs (linked, not copied) and scored; the table puts each
    DPO stage's cost and gains beside the GRPO stage's."""
    import importlib.util
    from pathlib import Path

    out, _ = quick_demo
    manifest_before = (out / "loop" / "manifest.json").read_text()
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_dpo_cost.py"
    spec = importlib.util.spec_from_file_location("bench_dpo_cost", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--from", str(out), "--epochs", "0.5,2", "--out", str(tmp_path / "cost")]) == 0
    result = json.loads((tmp_path / "cost" / "dpo_cost.json").read_text())[0]
    short, own = result["arms"]
    assert own["from"] == str(out / "loop") and short["epochs"] == 0.5
    assert 0 < short["steps"] < own["steps"]  # a quarter of the epochs: a quarter of the steps (rounded up)
    assert (tmp_path / "cost" / "seed-0" / "epochs-0.5" / "iter-1" / "grpo").is_symlink()
    assert short["summary"]["sampled_accuracy"] is not None and short["grpo_over_dpo"] > 0
    md = (tmp_path / "cost" / "dpo_cost.md").read_text()
    assert "| 0 | GRPO | - | - |" in md and "| 0 | DPO | 0.5 |" in md
    assert (out / "loop" / "manifest.json").read_text() == manifest_before  # the demo run is only read
    assert mod.main(["--from", str(out), "--epochs", "0.5,2", "--out", str(tmp_path / "cost")]) == 0
    again = json.loads((tmp_path / "cost" / "dpo_cost.json").read_text())[0]["arms"][0]
    assert again["seconds"] == short["seconds"]  # a rerun reports the measured stage, not the skip of it
