"""Issue 19, item 3: how much DPO stage does the loop need? The benefit of the first DPO stage against its cost,
next to the GRPO stage it follows (VerIPO reports its DPO stage 7x faster than its GRPO stage).

    .venv/bin/python scripts/bench_dpo_cost.py --from runs/demo-seeds --seeds 0,1,2 --epochs 0.25,0.5,1,2 \\
        --out runs/dpo-cost

For each seed of a finished ``veripo demo --seeds`` run (``FROM/seed-N/loop``; or the one loop of a ``veripo demo``
run, ``FROM/loop``): the first iteration's GRPO policy and verified pairs are reused as they are (linked, never
written), and a DPO stage is trained on them once per ``--epochs`` value, everything else the run's saved loop
config, then scored on the held-out split by the loop's own evaluation. Per arm: the DPO stage's seconds, its ratio to the GRPO stage's seconds, the change it made in sampled
inconsistency and sampled accuracy (from the policy after GRPO), and that change per second of stage time beside
GRPO's own change per second (from the warm start). Writes ``OUT/dpo_cost.md`` and ``OUT/dpo_cost.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIGURES = (("sampled_inconsistency_rate", "inconsistency (sampled)", -1), ("sampled_accuracy", "sampled accuracy", 1))


def _say(msg: str) -> None:
    print(msg, flush=True)


def _link_first_iteration(source: Path, arm_dir: Path) -> None:
    """The arm's iteration 1 reads the demo's GRPO policy and pairs through links: nothing is copied or changed."""
    it = arm_dir / "iter-1"
    it.mkdir(parents=True, exist_ok=True)
    for part in ("grpo", "verify"):
        link = it / part
        if not link.exists():
            os.symlink((source / "iter-1" / part).resolve(), link)


def _gain(after: dict[str, Any], before: dict[str, Any], key: str, sign: int) -> float | None:
    """The change of ``key`` from ``before`` to ``after``, positive when it is an improvement."""
    if after.get(key) is None or before.get(key) is None:
        return None
    return sign * (float(after[key]) - float(before[key]))


def loop_runs(reuse: Path, seeds: list[int]) -> list[tuple[int, Path]]:
    """(seed, loop directory) per run: ``FROM/loop`` for one ``veripo demo`` run, else ``FROM/seed-N/loop``."""
    if (reuse / "loop" / "manifest.json").exists():
        saved = yaml.safe_load((reuse / "loop" / "loop_config.yaml").read_text())  # every field, as saved
        return [(int(saved["seed"]), reuse / "loop")]
    return [(s, reuse / f"seed-{s}" / "loop") for s in seeds]


def cost_seed(seed: int, source: Path, out: Path, epochs: list[float]) -> dict[str, Any]:
    """The arms of one finished loop run ``source``: its saved config with only ``dpo.epochs`` and the run
    directory changed."""
    from veripo.config import from_dict, merge
    from veripo.io_utils import atomic_write_json
    from veripo.loop.config import LoopConfig
    from veripo.loop.stages import run_dpo, run_eval

    stages = json.loads((source / "manifest.json").read_text())["stages"]
    needed = ("eval-start", "iter-1/grpo", "iter-1/eval-grpo", "iter-1/verify", "iter-1/dpo", "iter-1/eval-dpo")
    missing = [k for k in needed if stages.get(k, {}).get("status") != "done"]
    if missing:
        raise SystemExit(f"{source}/manifest.json: stages {missing} are not done; finish the demo run first")
    saved = yaml.safe_load((source / "loop_config.yaml").read_text())
    start, after_grpo = stages["eval-start"]["summary"], stages["iter-1/eval-grpo"]["summary"]
    grpo_s = stages["iter-1/grpo"]["seconds"]
    result = {"seed": seed, "grpo_seconds": grpo_s, "verify_seconds": stages["iter-1/verify"]["seconds"],
              "pairs": stages["iter-1/verify"]["summary"].get("pairs"),
              "grpo_gain": {k: _gain(after_grpo, start, k, s) for k, _, s in FIGURES}, "arms": []}
    run_epochs = float((saved.get("dpo") or {}).get("epochs", 1.0))
    for e in epochs:
        arm_dir = out / f"seed-{seed}" / f"epochs-{e:g}"
        measured = arm_dir / "arm.json"
        if e == run_epochs:  # the run's own first DPO stage is this arm: reuse it
            arm = {"epochs": e, "seconds": stages["iter-1/dpo"]["seconds"],
                   "steps": stages["iter-1/dpo"]["summary"].get("steps"), "summary": stages["iter-1/eval-dpo"]["summary"],
                   "from": str(source)}
        elif measured.exists():  # a rerun: run_dpo would skip the trained stage, so its time is the one recorded
            arm = json.loads(measured.read_text())
        else:
            _link_first_iteration(source, arm_dir)
            lcfg = from_dict(LoopConfig, merge(saved, {"run_dir": str(arm_dir), "dpo": {"epochs": e}}))
            _say(f"[seed {seed}] DPO for {e:g} epochs -> {arm_dir}")
            t0 = time.perf_counter()
            dpo = run_dpo(lcfg, 1)
            seconds = time.perf_counter() - t0
            summary = run_eval(lcfg, str(arm_dir / "iter-1" / "dpo" / "final"), arm_dir / "iter-1" / "eval-dpo")
            arm = {"epochs": e, "seconds": seconds, "steps": dpo.get("steps"), "summary": summary, "from": str(arm_dir)}
            atomic_write_json(measured, arm)
        arm["gain"] = {k: _gain(arm["summary"], after_grpo, k, s) for k, _, s in FIGURES}
        arm["grpo_over_dpo"] = grpo_s / arm["seconds"] if arm["seconds"] else None
        result["arms"].append(arm)
    return result


def _per_s(gain: float | None, seconds: float) -> str:
    return "-" if gain is None or not seconds else f"{100 * gain / seconds:+.2f}"


def _row(seed: int, stage: str, epochs: str, steps: Any, seconds: float, ratio: str, gain: dict[str, Any]) -> str:
    """One table row: a stage's cost and its gains, in total and per second."""
    from veripo.demo.seeds import value_cell

    inc, acc = gain["sampled_inconsistency_rate"], gain["sampled_accuracy"]
    return (f"| {seed} | {stage} | {epochs} | {steps} | {seconds:.1f} | {ratio} | {value_cell(inc, True)} | "
            f"{value_cell(acc, True)} | {_per_s(inc, seconds)} | {_per_s(acc, seconds)} |")


def markdown(results: list[dict[str, Any]], load: str) -> str:
    from veripo.demo.seeds import spread_cell

    lines = ["# First DPO stage: benefit against cost, beside the GRPO stage it follows", "",
             f"Load average at the end: {load}. Gains are in points (percent), positive = better: inconsistency "
             "falling, accuracy rising. DPO's gains are from the policy after GRPO, GRPO's from the warm start.", "",
             "| seed | stage | epochs | steps | seconds | GRPO s / stage s | inconsistency gain | accuracy gain | "
             "inconsistency gain per s | accuracy gain per s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(_row(r["seed"], "GRPO", "-", "-", r["grpo_seconds"], "1.0", r["grpo_gain"]))
        for a in r["arms"]:
            lines.append(_row(r["seed"], "DPO", f"{a['epochs']:g}", a["steps"], a["seconds"],
                              f"{a['grpo_over_dpo']:.1f}x", a["gain"]))
    lines += ["", "Mean ± std over seeds:", "", "| DPO epochs | GRPO s / DPO s | inconsistency gain | accuracy gain |",
              "|---|---|---|---|"]
    for i, a0 in enumerate(results[0]["arms"]):
        arms = [r["arms"][i] for r in results]
        cells = [spread_cell([a["grpo_over_dpo"] for a in arms], False)]
        for key, _, _ in FIGURES:
            cells.append(spread_cell([a["gain"][key] for a in arms if a["gain"][key] is not None], True))
        lines.append(f"| {a0['epochs']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="reuse", required=True,
                   help="a finished `veripo demo` run directory (OUT/loop) or `veripo demo --seeds` one (OUT/seed-N/loop)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", default="0.25,0.5,1,2", help="DPO epochs per arm (the demo's own value is reused)")
    p.add_argument("--out", default="runs/dpo-cost")
    args = p.parse_args(argv)

    import veripo  # noqa: F401
    from veripo.demo.seeds import parse_seeds
    from veripo.io_utils import atomic_write_json, atomic_write_text

    try:
        epochs = [float(x) for x in args.epochs.split(",") if x.strip()]
    except ValueError:
        p.error(f"--epochs: expected comma-separated numbers, got {args.epochs!r}")
    if not epochs or min(epochs) <= 0:
        p.error("--epochs: every value must be > 0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed, source in loop_runs(Path(args.reuse), parse_seeds(args.seeds)):
        results.append(cost_seed(seed, source, out, epochs))
        atomic_write_json(out / "dpo_cost.json", results)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    atomic_write_text(out / "dpo_cost.md", markdown(results, load))
    _say((out / "dpo_cost.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
