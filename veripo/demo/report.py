"""The demo's report: ``report.md`` with PNG plots (held-out accuracy, response length and inconsistency
rate per stage, accuracy per task type per stage, GRPO reward/accuracy curves, time per stage), the per-type
table (also ``per_type.md``) and what was not learned, built from the run's own files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from veripo.io_utils import atomic_write_text, iter_jsonl
from veripo.loop.runner import summary_rows, summary_table


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_stage_metrics(rows: list[dict[str, Any]], out: Path) -> Path:
    plt = _plt()
    labels = [r["after"] for r in rows]
    x = list(range(len(rows)))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    panels = ((axes[0], (("accuracy", "greedy"), ("sampled_accuracy", "sampled")), "held-out accuracy (%)", 100),
              (axes[1], (("sampled_inconsistency_rate", "sampled"), ("inconsistency_rate", "greedy")),
               "inconsistency rate, judge (%)", 100),
              (axes[2], (("response_tokens", "tokens"),), "response length (tokens)", 1))
    for ax, series, title, scale in panels:
        width = 0.8 / len(series)
        for k, (key, name) in enumerate(series):
            vals = [(r.get(key) or 0.0) * scale for r in rows]
            pos = [i + (k - (len(series) - 1) / 2) * width for i in x]
            ax.bar(pos, vals, width=width, label=name)
            for p, v in zip(pos, vals):
                ax.text(p, v, f"{v:.0f}" if scale == 100 else f"{v:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        if len(series) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_type_accuracy(per_type: list[dict[str, Any]], out: Path) -> Path | None:
    """Held-out accuracy per task type after each stage: greedy (solid) and sampled (dashed)."""
    from veripo.demo.per_type import CHANCE, task_types

    types = task_types(per_type)
    if not types:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = list(range(len(per_type)))
    for i, t in enumerate(types):
        colour = f"C{i}"
        for part, style in (("greedy", "-o"), ("sampled", "--s")):
            ys = [100 * r[part][t] if t in r[part] else float("nan") for r in per_type]
            ax.plot(x, ys, style, color=colour, label=f"{t} {part}", markersize=4)
    ax.axhline(100 * CHANCE.get(types[0], 0.25), color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xticks(x, [r["after"] for r in per_type], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_title("held-out accuracy per task type (%)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_grpo_curves(loop_dir: Path, out: Path) -> Path | None:
    plt = _plt()
    runs = sorted(loop_dir.glob("iter-*/grpo/metrics.jsonl"))
    if not runs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    offset = 0
    for path in runs:
        rows = list(iter_jsonl(path, []))
        steps = [offset + r["step"] for r in rows]
        label = path.parts[-3]
        axes[0].plot(steps, [r.get("reward/total", 0) for r in rows], label=f"{label} total")
        axes[0].plot(steps, [r.get("reward/accuracy", 0) for r in rows], "--", label=f"{label} accuracy")
        axes[1].plot(steps, [r.get("response_length", 0) for r in rows], label=label)
        offset = steps[-1] + 1 if steps else offset
    axes[0].set_title("GRPO rollout reward (mean over P x G)")
    axes[0].set_xlabel("GRPO step")
    axes[0].legend(fontsize=7)
    axes[1].set_title("GRPO response length (tokens)")
    axes[1].set_xlabel("GRPO step")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_stage_times(stage_seconds: dict[str, float], out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    keys = list(stage_seconds)
    ax.barh(range(len(keys)), [stage_seconds[k] for k in keys], color="#55a868")
    ax.set_yticks(range(len(keys)), keys, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("time per stage")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_report(out_dir: Path, manifest: dict[str, Any], stage_seconds: dict[str, float],
                 checks: list[tuple[str, bool, str]], header: str, per_type: list[dict[str, Any]] | None = None,
                 missing: list[str] | None = None, extra: dict[str, Any] | None = None) -> Path:
    from veripo.demo.per_type import type_table

    rows = summary_rows(manifest)
    per_type = per_type or []
    table = type_table(per_type)
    atomic_write_text(out_dir / "per_type.md", table)
    plots = [plot_stage_metrics(rows, out_dir / "stages.png"),
             plot_type_accuracy(per_type, out_dir / "per_type.png"),
             plot_grpo_curves(out_dir / "loop", out_dir / "grpo_curves.png"),
             plot_stage_times(stage_seconds, out_dir / "times.png")]
    lines = ["# veripo demo report", "", header, "", "## Held-out results after each stage", "",
             summary_table(manifest)]
    if table:
        lines += ["## Held-out accuracy per task type after each stage", "",
                  "Greedy on each held-out question, and sampled (4 answers per question at the rollout "
                  "temperature); chance is 25% for every type.", "", table]
    lines += ["## What the run shows", ""]
    lines += [f"- [{'x' if ok else ' '}] {name}: {detail}" for name, ok, detail in checks]
    if missing:
        lines += ["", "## What was not learned", ""] + [f"- {m}" for m in missing]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots if p is not None]
    lines += ["", "## Time per stage (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in stage_seconds.items()]
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    atomic_write_text(out_dir / "report.json", json.dumps({"rows": rows, "per_type": per_type,
                                                           "stage_seconds": stage_seconds, "checks": checks,
                                                           "not_learned": missing or [], **(extra or {})}, indent=2))
    return path
