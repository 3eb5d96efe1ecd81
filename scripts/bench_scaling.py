"""Benchmark: how the GRPO and DPO step's time and peak memory grow with G, response length, frame count, frame size
and model width (the tiny kit on the CPU), one factor at a time around a base point: a table a run can be planned with.

    python scripts/bench_scaling.py [--quick] [--threads 1] [--steps 4] [--json out.json]

Base point: 4 prompts x G = 4 rollouts x 32 new tokens, 8-frame 56x56 clips (3136 pixels a frame), text hidden size
128. Each factor moves alone over its values (``--quick``: fewer values and one step less):

* ``group``   G, rollouts per prompt: 2 4 8 16 (the DPO step trains on the same number of sequences, 4 x G / 2 pairs);
* ``tokens``  max_new_tokens: 16 32 64 (the random-init kit rarely stops early, so rollouts run to the budget; the
              measured mean length is reported; the DPO pairs' responses are exactly this many tokens);
* ``frames``  frames per clip (the clips are generated with that many): 4 8 16;
* ``pixels``  pixels per frame, min_pixels = max_pixels (clips generated at that size): 3136 12544 50176
              (56^2, 112^2, 224^2: 4, 16, 64 video tokens a frame pair);
* ``width``   text hidden size 64 128 256, with the MLP at 2x and the ViT at half of it (a kit per width).

Every (point, stage) runs in its own process (``bench_grpo_vs_trl.run_worker``) so its peak RSS is its own: the
GRPO stage is ``bench_grpo_vs_trl.run_ours`` (``GRPOTrainer``: the step's wall time, and ``time/generate_s`` /
``time/update_s`` from its metrics), the DPO stage ``bench_dpo_vs_trl.run_ours`` (``DPOTrainer``, sigmoid loss,
reference log-probs computed before the first step). ``tokens/seq``: the mean length of the DPO step's sequences
(prompt with its video tokens + response; about the GRPO step's too, whose responses are "mean len" long).
``--steps`` steps each; the first is warm-up, the figures are medians of the others. The exponent of a factor is the
least-squares slope of log(time) against log(value): time grows about as value^exponent, which is what to
extrapolate with.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_dpo_vs_trl as dpo_bench  # noqa: E402  (the DPO run)
import bench_grpo_vs_trl as grpo_bench  # noqa: E402  (set-up, the GRPO run, the worker process)

PROMPTS = 4
BASE = {"group": 4, "tokens": 32, "frames": 8, "pixels": 3136, "width": 128}
FACTORS = {"group": (2, 4, 8, 16), "tokens": (16, 32, 64), "frames": (4, 8, 16), "pixels": (3136, 12544, 50176),
           "width": (64, 128, 256)}
QUICK = {"group": (2, 4, 8), "tokens": (16, 32), "frames": (4, 8), "pixels": (3136, 12544), "width": (64, 128)}
STAGES = ("grpo", "dpo")


# ----------------------------------------------------------------------------------------------- points
def points(factors: dict[str, tuple[int, ...]], base: dict[str, int] = BASE) -> list[dict[str, int]]:
    """The distinct measurement points: the base, then each factor's values with the others at the base."""
    out = [dict(base)]
    for name, values in factors.items():
        for v in values:
            p = {**base, name: v}
            if p not in out:
                out.append(p)
    return out


def point_key(p: dict[str, int]) -> str:
    return "-".join(f"{k}{p[k]}" for k in sorted(p))


def kit_spec(p: dict[str, int]):
    from veripo.models.tiny import TinyModelSpec

    w = p["width"]
    return TinyModelSpec(hidden_size=w, intermediate_size=2 * w, vision_hidden=w // 2, min_pixels=p["pixels"],
                         max_pixels=p["pixels"])


def prepare_point(work: Path, p: dict[str, int], cache: dict) -> dict[str, str]:
    """Clips of the point's frame count and size and a kit of its width and pixel budget (shared between points
    that differ only in G or tokens)."""
    key = (p["frames"], p["pixels"], p["width"])
    if key not in cache:
        side = math.isqrt(p["pixels"])
        folder = work / f"f{p['frames']}-p{p['pixels']}-w{p['width']}"
        cache[key] = grpo_bench.prepare(folder, n_rows=PROMPTS * max(FACTORS["group"]),
                                        clip={"frames": p["frames"], "size": side}, kit_spec=kit_spec(p))
    return cache[key]


def video_overrides(p: dict[str, int]) -> tuple[str, ...]:
    return (f"video.num_frames={p['frames']}", f"video.min_pixels={p['pixels']}", f"video.max_pixels={p['pixels']}")


# ----------------------------------------------------------------------------------------------- one measurement
def stage_args(args, p: dict[str, int], paths: dict[str, str]) -> argparse.Namespace:
    """What the two trainers' bench runs read from ``args``, for point ``p``."""
    return argparse.Namespace(kit=paths["kit"], prompts=PROMPTS, group=p["group"], tokens=p["tokens"],
                              pairs=PROMPTS * p["group"] // 2, steps=args.steps, threads=args.threads)


def measure(stage: str, args, p: dict[str, int], paths: dict[str, str], out_dir: Path) -> dict:
    """One stage at one point, in this process: seconds per step (median of steps 2..N) and the work done."""
    a = stage_args(args, p, paths)
    if stage == "grpo":
        r = grpo_bench.run_ours(a, paths["video_file"], out_dir, overrides=video_overrides(p))
        timed = r["step_s"][1:] or r["step_s"]
        return {"s_per_step": statistics.median(timed), "generate_s": r["generate_s"], "update_s": r["update_s"],
                "mean_len": r["mean_len"], "rollouts": PROMPTS * p["group"],
                "tokens_generated": r["mean_len"] * PROMPTS * p["group"], "step_s": r["step_s"]}
    r = dpo_bench.run_ours(a, paths["video_file"], out_dir, overrides=video_overrides(p), response_tokens=p["tokens"])
    return {"s_per_step": statistics.median(r["step_s"]), "pairs": a.pairs, "tokens_per_step": r["tokens_per_step"],
            "step_s": r["step_s"]}


def spawn(stage: str, args, p: dict[str, int], paths: dict[str, str]) -> dict:
    """``measure`` in a fresh process (``--worker``): its result with the process's peak RSS."""
    return grpo_bench.run_worker(__file__, stage, args, paths, ["--point", json.dumps(p), "--threads",
                                                                str(args.threads)])


def worker(args) -> None:
    p = json.loads(args.point)
    paths = {"kit": args.kit, "video_file": args.video_file}
    result = measure(args.worker, args, p, paths, Path(args.work) / f"run-{args.worker}-{point_key(p)}")
    result["peak_rss_mb"] = grpo_bench.peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------- tables
def fit_exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): y grows about as x ** slope."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def factor_rows(results: dict[str, dict], factor: str, values, base: dict[str, int] = BASE) -> list[dict]:
    """One row per value of ``factor``: both stages' figures, each time also as a ratio to the base point's."""
    g0, d0 = (results[point_key(base)][s]["s_per_step"] for s in STAGES)
    rows = []
    for v in values:
        r = results[point_key({**base, factor: v})]
        g, d = r["grpo"], r["dpo"]
        rows.append({"value": v, "grpo_s": g["s_per_step"], "grpo_ratio": g["s_per_step"] / g0,
                     "generate_s": g["generate_s"], "update_s": g["update_s"], "mean_len": g["mean_len"],
                     "grpo_rss_mb": g["peak_rss_mb"], "dpo_s": d["s_per_step"], "dpo_ratio": d["s_per_step"] / d0,
                     "dpo_rss_mb": d["peak_rss_mb"], "seq_tokens": d["tokens_per_step"] / (2 * d["pairs"])})
    return rows


def exponents(rows: list[dict]) -> dict[str, float]:
    xs = [r["value"] for r in rows]
    return {k: fit_exponent(xs, [r[k] for r in rows]) for k in ("grpo_s", "generate_s", "update_s", "dpo_s")}


def markdown(factor: str, rows: list[dict]) -> str:
    head = (f"| {factor} | tokens/seq | GRPO s/step | x base | generate s | update s | mean len "
            f"| GRPO peak RSS MB | DPO s/step | x base | DPO peak RSS MB |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r['value']} | {r['seq_tokens']:.0f} | {r['grpo_s']:.3f} | {r['grpo_ratio']:.2f} "
                     f"| {r['generate_s']:.3f} | {r['update_s']:.3f} | {r['mean_len']:.1f} | {r['grpo_rss_mb']:.0f} "
                     f"| {r['dpo_s']:.3f} | {r['dpo_ratio']:.2f} | {r['dpo_rss_mb']:.0f} |")
    e = exponents(rows)
    lines.append(f"| exponent | | {e['grpo_s']:.2f} | | {e['generate_s']:.2f} | {e['update_s']:.2f} | | "
                 f"| {e['dpo_s']:.2f} | | |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer values per factor and one step less (1-2 min)")
    ap.add_argument("--steps", type=int, default=None, help="steps per run, the first one warm-up (default 4; "
                    "--quick 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--json", help="also write the results (points, rows, exponents) here")
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    ap.add_argument("--worker", choices=STAGES, help=argparse.SUPPRESS)
    for name in ("--point", "--kit", "--text-file", "--video-file"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.steps = args.steps or (3 if args.quick else 4)
    if args.worker:
        worker(args)
        return 0
    factors = QUICK if args.quick else FACTORS
    with tempfile.TemporaryDirectory(prefix="veripo-bench-scaling-") as tmp:
        args.work = args.work or tmp
        work = Path(args.work)
        print(f"load average {os.getloadavg()}; {args.threads} thread(s), {args.steps} steps per run", flush=True)
        cache: dict = {}
        results: dict[str, dict] = {}
        for p in points(factors):
            paths = prepare_point(work, p, cache)
            results[point_key(p)] = {"point": p, **{s: spawn(s, args, p, paths) for s in STAGES}}
            r = results[point_key(p)]
            print(f"{point_key(p)}: GRPO {r['grpo']['s_per_step']:.3f} s, DPO {r['dpo']['s_per_step']:.3f} s",
                  flush=True)
    tables = {f: factor_rows(results, f, values) for f, values in factors.items()}
    for f, rows in tables.items():
        print(f"\n{f} (others at the base point {BASE}, {PROMPTS} prompts)\n" + markdown(f, rows))
    print(f"\nload average after {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"base": BASE, "prompts": PROMPTS, "results": results, "tables": tables,
                                               "exponents": {f: exponents(r) for f, r in tables.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
