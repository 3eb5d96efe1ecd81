"""Sol-RL's cheap pool and PDPPO's dual critic against plain GRPO at equal training time, from one warm start.

    .venv/bin/python scripts/compare_grpo_variants.py --out runs/variants --seeds 0,1,2 --seconds 120 \
        [--clock cpu] [--arms grpo,sol_rl,pdppo] [--quick] [key=value ...]

Per seed: the demo's task, kit and warm start (``veripo demo``'s own config and dotted overrides; ``--quick``: the
quick demo's), then one GRPO run per arm from that warm start with the demo's GRPO settings, the learning rate
held constant, stopped by ``run.time_limit_s`` after ``--seconds`` of training (``--clock cpu``: the process's CPU
seconds with one torch thread while an arm trains -- fair between arms on a shared machine, where a second thread's
spin-waiting would bill the other processes' load to the arm; ``wall``: elapsed seconds). Arms:

* ``grpo``   -- plain GRPO (G rollouts per prompt, the demo's estimator);
* ``sol_rl`` -- ``rollout.cheap_pool``: 2G candidates per prompt from an int8 copy of the policy, the best G/2 and
  the worst G/2 trained with full-precision log-probs and a truncated importance weight (cap 3);
* ``pdppo``  -- ``algo.advantage_estimator=pdppo``: token-level GAE from the minimum of two value heads.

Each final policy is scored on the held-out split as the loop scores it (greedy accuracy, accuracy of sampled
answers, inconsistency, response tokens). Writes ``OUT/variants.md`` (per seed, then mean ± std over seeds),
``OUT/variants.json``, and prints the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS: dict[str, dict[str, Any]] = {
    "grpo": {},
    "sol_rl": {"rollout": {"cheap_pool": {"pool_size": 16, "keep_top": 4, "keep_bottom": 4, "quantize": "int8"}}},
    "pdppo": {"algo": {"advantage_estimator": "pdppo", "value_heads": {"lr": 1e-3}}},
}
METRICS = (("accuracy", "greedy acc", True), ("sampled_accuracy", "sampled acc", True),
           ("sampled_inconsistency_rate", "inconsistency (sampled)", True), ("response_tokens", "tokens", False))


def run_arm(cfg, prep: dict[str, Any], arm: str, seconds: float, clock: str, threads: int | None) -> dict[str, Any]:
    import torch

    from veripo.config import merge
    from veripo.demo.cli import loop_config
    from veripo.loop.stages import run_eval, run_grpo

    run_dir = prep["out"] / f"arm-{arm}"
    grpo = merge({"run": {"steps": 10_000, "save_every": 0, "time_limit_s": seconds, "time_limit_clock": clock},
                  "optim": {"schedule": "constant"}}, ARMS[arm])
    lcfg = loop_config(cfg, prep, run_dir, iterations=1, grpo=grpo)
    print(f"[seed {cfg.seed} {arm}] GRPO for {seconds:.0f} {clock} seconds -> {run_dir}", flush=True)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        summary = run_grpo(lcfg, 1)
    finally:
        torch.set_num_threads(before)
    final = run_dir / "iter-1" / "grpo" / "final"
    result = run_eval(lcfg, str(final), run_dir / "eval")
    load = os.getloadavg()[0]
    return {"steps": summary["steps"], "reward_last5": summary.get("reward/total/last5"), "eval": result,
            "load_after": load}


def markdown(results: list[dict[str, Any]], arms: list[str], seconds: float, clock: str) -> str:
    from veripo.demo.seeds import spread_cell, value_cell

    head = " | ".join(n for _, n, _ in METRICS)
    lines = [f"# GRPO variants at equal training time ({seconds:.0f} {clock} s per arm), same warm start", "",
             f"| seed | arm | GRPO steps | {head} | load after |", "|---|---|---|" + "---|" * len(METRICS) + "---|"]
    for r in results:
        start = r["warm_start"]
        lines.append(f"| {r['seed']} | warm start | 0 | " + " | ".join(value_cell(start.get(k), p) for k, _, p in METRICS)
                     + " | |")
        for arm in arms:
            a = r[arm]
            lines.append(f"| {r['seed']} | {arm} | {a['steps']} | "
                         + " | ".join(value_cell(a["eval"].get(k), p) for k, _, p in METRICS) + f" | {a['load_after']:.1f} |")
    lines += ["", "Mean ± standard deviation over seeds:", "", f"| arm | GRPO steps | {head} |",
              "|---|---|" + "---|" * len(METRICS)]
    for arm in ["warm_start"] + arms:
        rows = [r["warm_start"] if arm == "warm_start" else r[arm]["eval"] for r in results]
        steps = [0 if arm == "warm_start" else r[arm]["steps"] for r in results]
        cells = [spread_cell([x[k] for x in rows if x.get(k) is not None], p) for k, _, p in METRICS]
        lines.append(f"| {arm.replace('_', ' ')} | {spread_cell(steps, False)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"






def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/variants")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--seconds", type=float, default=120.0, help="training seconds per arm")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--arm-threads", type=int, default=None,
                   help="torch intra-op threads while an arm trains (default: 1 with --clock cpu, else unchanged). "
                        "With 2 threads on a shared machine OpenMP spin-waits at its barriers while the other "
                        "thread is descheduled, which inflates CPU seconds by the load: one thread keeps them fair")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--quick", action="store_true", help="the quick demo's task and warm start")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="DemoConfig overrides, as for veripo demo")
    args = p.parse_args(argv)

    import veripo  # noqa: F401
    from veripo.demo.cli import loop_config, prepare_run
    from veripo.demo.config import demo_config
    from veripo.demo.seeds import parse_seeds
    from veripo.io_utils import atomic_write_json, atomic_write_text
    from veripo.loop.stages import run_eval

    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        p.error(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    cfg = demo_config(args.quick, args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in parse_seeds(args.seeds):
        one = dataclasses.replace(cfg, seed=seed, out_dir=str(out / f"seed-{seed}"))
        prep = prepare_run(one, resume=True)
        start_cfg = loop_config(one, prep, prep["out"] / "warm-start")
        entry: dict[str, Any] = {"seed": seed, "warm_start": run_eval(start_cfg, str(prep["sft_dir"] / "final"),
                                                                      prep["out"] / "warm-start" / "eval")}
        for arm in arms:
            threads = args.arm_threads or (1 if args.clock == "cpu" else None)
            entry[arm] = run_arm(one, prep, arm, args.seconds, args.clock, threads)
            atomic_write_json(out / "variants.json", results + [entry])
        results.append(entry)
    atomic_write_text(out / "variants.md", markdown(results, arms, args.seconds, args.clock))
    print((out / "variants.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
