"""VerIPO's central claim, tested at toy scale: from the same warm start and at equal wall time, does the loop
(GRPO -> verify -> DPO, twice) beat GRPO alone?

    .venv/bin/python scripts/compare_loop_vs_grpo.py --out runs/compare --seeds 0,1,2 [--quick] [key=value ...]
    .venv/bin/python scripts/compare_loop_vs_grpo.py --out runs/compare --from runs/demo-seeds   # reuse a
        `veripo demo --seeds` run: its warm starts and loops are the loop arm; only the GRPO arm is trained

Per seed: the demo's task, kit and warm start (``veripo demo``'s own config, dotted overrides as for
``veripo demo``), then

* **loop arm** -- the demo's loop; its training time W = the seconds of its GRPO, verify and DPO stages
  (held-out evaluations between stages are not counted);
* **GRPO arm** -- GRPO alone from the same warm start, same settings (learning rate schedule spread over its
  own steps), for ``round(W / s)`` steps, where s is the loop's own seconds per GRPO step: equal wall time by
  construction; the measured seconds of both arms are in the table.

Both arms are scored on the same held-out split the same way (greedy accuracy, accuracy of 4 sampled answers at
the rollout temperature, share of sampled answers the rule judge finds inconsistent, mean response tokens,
sampled accuracy per task type). Writes ``OUT/compare.md`` (per seed and mean ± std), ``OUT/compare.json``
and ``OUT/compare.png``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ("warm_start", "loop", "grpo", "loop_reflective")
METRICS = (("accuracy", "greedy accuracy", True), ("sampled_accuracy", "sampled accuracy", True),
           ("sampled_inconsistency_rate", "inconsistency (sampled)", True), ("response_tokens", "response tokens", False))


def _say(msg: str) -> None:
    print(msg, flush=True)


def loop_arm(cfg, prep: dict[str, Any], name: str = "loop", **overrides: Any) -> dict[str, Any]:
    from veripo.demo.cli import BUDGET, loop_config
    from veripo.loop.runner import run_loop

    lcfg = loop_config(cfg, prep, prep["out"] / name, **overrides)
    manifest = run_loop(lcfg, resume=True, log=lambda m: _say(f"[{name} arm] {m}"),
                        budget=BUDGET["quick" if cfg.quick else "full"])
    stages = manifest["stages"]
    train_keys = [k for k in stages if "eval" not in k]
    grpo_keys = [k for k in train_keys if k.endswith("/grpo")]
    last_eval = [k for k in stages if "eval" in k][-1]
    return {"summary": stages[last_eval]["summary"],
            "train_seconds": sum(stages[k]["seconds"] for k in train_keys),
            "grpo_seconds": sum(stages[k]["seconds"] for k in grpo_keys),
            "grpo_steps": sum(int(stages[k]["summary"].get("steps") or lcfg.grpo.get("run", {}).get("steps", 0))
                              for k in grpo_keys),
            "start": stages["eval-start"]["summary"] if "eval-start" in stages else None,
            "per_stage": [{"after": k, **{m: stages[k]["summary"].get(m) for m, _, _ in METRICS}}
                          for k in stages if "eval" in k]}


def grpo_arm(cfg, prep: dict[str, Any], steps: int) -> dict[str, Any]:
    from veripo.demo.cli import loop_config
    from veripo.loop.stages import run_eval, run_grpo

    run_dir = prep["out"] / "grpo-only"
    lcfg = loop_config(cfg, prep, run_dir, iterations=1, grpo={"run": {"steps": steps, "save_every": 0}})
    t0 = time.perf_counter()
    _say(f"[grpo arm] GRPO alone for {steps} steps -> {run_dir}")
    run_grpo(lcfg, 1)
    seconds = time.perf_counter() - t0
    summary = run_eval(lcfg, str(run_dir / "iter-1" / "grpo" / "final"), run_dir / "eval-grpo")
    return {"summary": summary, "train_seconds": seconds, "grpo_steps": steps}


def compare_seed(cfg, seed: int, out: Path, reuse: Path | None, reflective: bool = False) -> dict[str, Any]:
    import dataclasses

    from veripo.demo.cli import prepare_run

    run_out = (reuse / f"seed-{seed}") if reuse else (out / f"seed-{seed}")
    one = dataclasses.replace(cfg, seed=seed, out_dir=str(run_out))
    prep = prepare_run(one, resume=True)
    loop = loop_arm(one, prep)
    per_step = loop["grpo_seconds"] / max(1, loop["grpo_steps"])
    steps = max(1, round(loop["train_seconds"] / per_step))
    if reuse:  # keep the reused run untouched: the GRPO arm goes under OUT
        prep = {**prep, "out": out / f"seed-{seed}"}
        prep["out"].mkdir(parents=True, exist_ok=True)
    grpo = grpo_arm(one, prep, steps)
    result = {"seed": seed, "warm_start": loop["start"], "loop": loop, "grpo": grpo, "seconds_per_grpo_step": per_step}
    if reflective:  # item 4: the same loop with reflective pairs (wrong reasoning, a reflection, a right one) too
        result["loop_reflective"] = loop_arm(one, prep, "loop-reflective",
                                             verify={"pairs": {"kinds": ["quality", "reflective"]}})
    return result






def markdown(results: list[dict[str, Any]]) -> str:
    from veripo.demo.seeds import spread_cell, value_cell

    lines = ["# Loop (GRPO -> verify -> DPO, x2) vs GRPO alone, equal wall time, same warm start", "",
             "| seed | arm | train s | GRPO steps | " + " | ".join(n for _, n, _ in METRICS) + " | sampled by type |",
             "|---|---|---|---|" + "---|" * len(METRICS) + "---|"]
    for r in results:
        for arm in ARMS:
            if arm not in r:
                continue
            entry = r[arm] if arm != "warm_start" else {"summary": r["warm_start"] or {}}
            s = entry["summary"]
            by = ", ".join(f"{t} {100 * v:.0f}%" for t, v in (s.get("sampled_accuracy_by_task") or {}).items())
            lines.append(f"| {r['seed']} | {arm.replace('_', ' ')} | {value_cell(entry.get('train_seconds'), False)} | "
                         f"{entry.get('grpo_steps', '-')} | "
                         + " | ".join(value_cell(s.get(k), pct) for k, _, pct in METRICS) + f" | {by} |")
    lines += ["", "Mean ± standard deviation over seeds:", "", "| arm | " + " | ".join(n for _, n, _ in METRICS) + " |",
              "|---|" + "---|" * len(METRICS)]
    for arm in [a for a in ARMS[1:] if all(a in r for r in results)]:
        cells = []
        for k, _, pct in METRICS:
            vals = [r[arm]["summary"].get(k) for r in results if r[arm]["summary"].get(k) is not None]
            cells.append(spread_cell(vals, pct))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    wins = sum(r["loop"]["summary"].get("sampled_accuracy", 0) > r["grpo"]["summary"].get("sampled_accuracy", 0)
               for r in results)
    lines += ["", f"The loop has the higher sampled accuracy on {wins} of {len(results)} seeds."]
    if all("loop_reflective" in r for r in results):
        lines += ["", "Response length and sampled inconsistency per stage, quality pairs vs quality + reflective pairs:",
                  "", "| seed | stage | tokens (quality) | tokens (+reflective) | inconsistency (quality) | "
                  "inconsistency (+reflective) |", "|---|---|---|---|---|---|"]
        for r in results:
            for a, b in zip(r["loop"]["per_stage"], r["loop_reflective"]["per_stage"]):
                lines.append(f"| {r['seed']} | {a['after']} | {value_cell(a['response_tokens'], False)} | "
                             f"{value_cell(b['response_tokens'], False)} | {value_cell(a['sampled_inconsistency_rate'], True)} | "
                             f"{value_cell(b['sampled_inconsistency_rate'], True)} |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6))
    for ax, (key, name, pct) in zip(axes, METRICS):
        for i, arm in enumerate(("warm_start", "loop", "grpo")):
            vals = [((r[arm] or {}) if arm == "warm_start" else r[arm]["summary"]).get(key) for r in results]
            vals = [(100 if pct else 1) * v for v in vals if v is not None]
            if vals:
                ax.bar(i, statistics.fmean(vals), color=f"C{i}", alpha=0.6)
                ax.plot([i] * len(vals), vals, "ko", markersize=4)
        ax.set_xticks([0, 1, 2], ["warm start", "loop", "GRPO alone"])
        ax.set_title(name + (" (%)" if pct else ""))
    fig.suptitle("equal wall time from the same warm start (dots: seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--quick", action="store_true", help="the demo's --quick settings (a smoke run)")
    p.add_argument("--reflective", action="store_true",
                   help="also run the loop with reflective pairs (quality + reflective): length and inconsistency per stage")
    p.add_argument("--from", dest="reuse", default=None,
                   help="a `veripo demo --seeds` run directory whose seed-N/ warm starts and loops to reuse")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="DemoConfig overrides, as for veripo demo")
    args = p.parse_args(argv)

    import veripo  # noqa: F401
    from veripo.demo.config import demo_config
    from veripo.demo.seeds import parse_seeds
    from veripo.io_utils import atomic_write_json, atomic_write_text

    cfg = demo_config(args.quick, args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reuse = Path(args.reuse) if args.reuse else None
    results = []
    for seed in parse_seeds(args.seeds):
        results.append(compare_seed(cfg, seed, out, reuse, reflective=args.reflective))
        atomic_write_json(out / "compare.json", results)
    atomic_write_text(out / "compare.md", markdown(results))
    plot(results, out / "compare.png")
    _say((out / "compare.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
