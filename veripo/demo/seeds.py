"""``veripo demo --seeds 0,1,2``: the demo once per seed (``OUT/seed-N/``), then ``OUT/seeds.md`` and
``OUT/seeds.json``: every seed's table, and per stage the mean and spread (min..max) of each figure, overall
and per task type, with how many seeds pass each check."""
from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from veripo.errors import VeripoError
from veripo.io_utils import atomic_write_json, atomic_write_text

OVERALL = (("accuracy", "greedy"), ("sampled_accuracy", "sampled"), ("sampled_inconsistency_rate", "inconsistency (sampled)"),
           ("response_tokens", "response tokens"))


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise VeripoError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise VeripoError(f"--seeds: expected distinct seeds, got {text!r}")
    return seeds


def spread(values: list[float]) -> dict[str, float]:
    """mean, sample standard deviation (0 for one value), min and max."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def aggregate(results: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage (``after``): the spread of each overall figure and of greedy/sampled accuracy per type."""
    stages: dict[str, dict[str, list[float]]] = {}
    for res in results.values():
        for row in res["rows"]:
            cell = stages.setdefault(row["after"], {})
            for key, _ in OVERALL:
                if row.get(key) is not None:
                    cell.setdefault(key, []).append(float(row[key]))
        for row in res["per_type"]:
            cell = stages.setdefault(row["after"], {})
            for part in ("greedy", "sampled"):
                for t, v in row[part].items():
                    cell.setdefault(f"{t} {part}", []).append(float(v))
    return [{"after": after, **{k: spread(v) for k, v in cell.items()}} for after, cell in stages.items()]


def spread_cell(values: list[float], pct: bool) -> str:
    """A table cell for figures over seeds: ``mean ± std (min..max)``, in percent when ``pct``; ``-`` for none."""
    return _cell(spread(values) if values else None, pct)


def value_cell(value: float | None, pct: bool) -> str:
    """A table cell for one figure: ``12.3%`` when ``pct``, else ``12.3``; ``-`` for None."""
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if pct else f"{value:.1f}"


def _cell(s: dict[str, float] | None, pct: bool) -> str:
    if not s:
        return "-"
    scale, unit = (100, "%") if pct else (1, "")
    return f"{scale * s['mean']:.1f}{unit} ± {scale * s['std']:.1f} ({scale * s['min']:.1f}..{scale * s['max']:.1f})"


def seeds_markdown(results: dict[int, dict[str, Any]], agg: list[dict[str, Any]]) -> str:
    seeds = sorted(results)
    lines = [f"# veripo demo over seeds {', '.join(map(str, seeds))}", "",
             "Mean ± sample standard deviation (min..max) over the seeds. Same seed on the same machine gives the "
             "same table; across machines the figures can move.", "", "## Overall", ""]
    lines += ["| after | " + " | ".join(name for _, name in OVERALL) + " |", "|---|" + "---|" * len(OVERALL)]
    for row in agg:
        lines.append(f"| {row['after']} | " + " | ".join(_cell(row.get(k), k != "response_tokens") for k, _ in OVERALL)
                     + " |")
    keys = sorted({k for row in agg for k in row if k.endswith((" greedy", " sampled"))})
    if keys:
        lines += ["", "## Per task type (held-out accuracy)", "",
                  "| after | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for row in agg:
            lines.append(f"| {row['after']} | " + " | ".join(_cell(row.get(k), True) for k in keys) + " |")
    names = [c[0] for c in next(iter(results.values()))["checks"]]
    lines += ["", "## Checks (seeds passing)", "", "| check | seeds passing |", "|---|---|"]
    for name in names:
        ok = [s for s in seeds if any(c[0] == name and c[1] for c in results[s]["checks"])]
        lines.append(f"| {name} | {len(ok)}/{len(seeds)} ({', '.join(map(str, ok)) or 'none'}) |")
    lines += ["", "## Each seed", ""]
    for s in seeds:
        res = results[s]
        lines += [f"### seed {s} (warm start {res.get('sft_steps')} steps, {res['seconds']:.0f}s)", "",
                  Path(res["report_dir"], "loop", "summary.md").read_text().split("\n\n")[0], "",
                  Path(res["report_dir"], "per_type.md").read_text(), ""]
    return "\n".join(lines) + "\n"


def _one_seed(cfg, resume: bool) -> dict[str, Any]:
    import veripo  # noqa: F401  (a spawned worker: torchvision shim before transformers)
    from veripo.demo.cli import run_demo

    return {**run_demo(cfg, resume=resume), "report_dir": cfg.out_dir}


def run_seeds(cfg, seeds: list[int], resume: bool = False, jobs: int = 1) -> dict[str, Any]:
    """Each seed's demo in turn (``jobs`` > 1: that many at once, in separate processes; a seed's table does not
    depend on what runs beside it, only its wall time does)."""
    root = Path(cfg.out_dir)
    marker = root / ".veripo-demo-seeds"
    if root.exists() and not marker.exists() and any(root.iterdir()):
        raise VeripoError(f"{root} exists and is not a veripo demo --seeds run; choose another --out")
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text("veripo demo --seeds run directory\n")
    configs = {seed: dataclasses.replace(cfg, seed=seed, out_dir=str(root / f"seed-{seed}")) for seed in seeds}
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {seed: pool.submit(_one_seed, one, resume) for seed, one in configs.items()}
            results = {seed: f.result() for seed, f in futures.items()}
    else:
        results = {seed: _one_seed(one, resume) for seed, one in configs.items()}
    agg = aggregate(results)
    atomic_write_json(root / "seeds.json", {"seeds": seeds, "aggregate": agg,
                                            "runs": {str(s): {k: v for k, v in r.items()} for s, r in results.items()}})
    atomic_write_text(root / "seeds.md", seeds_markdown(results, agg))
    print(f"\n[demo] {len(seeds)} seeds: {root / 'seeds.md'}", flush=True)
    return {"results": results, "aggregate": agg}
