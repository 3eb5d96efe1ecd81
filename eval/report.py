"""Results tables and checkpoint comparisons (``veripo eval report --results DIR1 DIR2 ... --out DIR``).

Each DIR is a ``veripo eval run`` output (its ``results.json``) or a parent folder holding several of them
(one per benchmark). The checkpoint label is the DIR's name. Written to ``--out``:

``report.md``    per benchmark: one row per task type + overall, one column per checkpoint (scores × 100), then
                 response length, format compliance and inconsistency rate per checkpoint
``report.png``   overall score per benchmark across checkpoints (matplotlib, Agg backend)
``report.json``  the same numbers, machine-readable

``--match strict|lenient|official`` rescores each run's ``predictions.jsonl`` under that rule first (without
an LLM judge); by default each ``results.json`` is reported as scored, and its rule is named per benchmark.

A folder holding a benchmark's clean run and runs of it under ``--frame-transform`` (sub-folders of one checkpoint
folder) also gets a robustness table: ``(clean − perturbed) / clean`` per transform.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from veripo.errors import DataError
from veripo.eval.robustness import robustness_table
from veripo.io_utils import atomic_write_json, atomic_write_text


def rescore(res: dict[str, Any], results_file: Path, match: str) -> dict[str, Any]:
    """``res`` with its scores recomputed from the run's ``predictions.jsonl`` under ``match`` (no judge)."""
    from veripo.eval.benchmarks import get_adapter
    from veripo.eval.predictions import score_predictions_file

    preds = results_file.parent / "predictions.jsonl"
    if not preds.exists():
        raise DataError(f"{results_file}: --match {match} needs the run's predictions.jsonl beside it")
    name = (res.get("settings") or {}).get("benchmark") or res.get("benchmark") or results_file.parent.name
    fresh, _ = score_predictions_file(get_adapter(name), preds, match)
    keep = {k: v for k, v in res.items() if k not in ("overall_micro", "task_scores_official", "scorer",
                                                        "n_counted", "n_judge_items", "open_ended")}
    return {**keep, **fresh}


def load_results(dirs: list[str | Path], match: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{checkpoint label: {benchmark: results}}``, in the order given; ``match`` rescoring each run's
    predictions under that rule (:func:`rescore`)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for d in dirs:
        d = Path(d)
        files = [d / "results.json"] if (d / "results.json").exists() else sorted(d.glob("*/results.json"))
        if d.suffix == ".json" and d.is_file():
            files = [d]
        if not files:
            raise DataError(f"{d}: no results.json here or in its sub-folders")
        label = d.stem if d.is_file() else d.name
        bench: dict[str, dict[str, Any]] = {}
        for f in files:
            try:
                res = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                raise DataError(f"{f}: not valid JSON ({e.msg})") from None
            if match is not None:
                res = rescore(res, f, match)
            name = res.get("benchmark") or f.parent.name
            transform = (res.get("settings") or {}).get("frame_transform", "none")
            key = name if transform in (None, "none") else f"{name} [{transform}]"
            bench[key] = res
        out[label] = bench
    return out


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown_report(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    labels = list(results)
    benchmarks = sorted({b for r in results.values() for b in r})
    lines = ["# Evaluation report", "", f"Checkpoints: {', '.join(labels)}. Scores are percentages.", ""]
    for b in benchmarks:
        any_res = next(r[b] for r in results.values() if b in r)
        lines += [f"## {b}", "", f"match: {any_res.get('match')}; overall = {any_res.get('aggregation')}", ""]
        lines.append("| task | " + " | ".join(labels) + " |")
        lines.append("|---|" + "---|" * len(labels))
        tasks = sorted({t for r in results.values() if b in r for t in r[b].get("tasks", {})})
        for t in tasks:
            cells = []
            for lab in labels:
                v = results[lab].get(b, {}).get("tasks", {}).get(t)
                cells.append("–" if v is None else f"{_pct(v['score'])} (n={v['n']})")
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
        lines.append("| **overall** | " + " | ".join(
            f"**{_pct(results[lab][b]['overall'])}**" if b in results[lab] else "–" for lab in labels) + " |")
        lines.append("")
        lines += _reasoning_lines(b, labels, results)
    robust = robustness_summary(results)
    if robust:
        lines += ["## Robustness (relative degradation of overall vs the clean run)", "",
                  "| checkpoint | benchmark | perturbation | clean | perturbed | degradation % |", "|---|---|---|---|---|---|"]
        for lab, per_bench in robust.items():
            for b, table in per_bench.items():
                for spec, v in table["perturbations"].items():
                    lines.append(f"| {lab} | {b} | {spec} | {_pct(table['clean_overall'])} | {_pct(v['overall'])} "
                                 f"| {_pct(v['degradation'])} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def robustness_summary(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per checkpoint: each benchmark run under a frame transform compared with its clean run."""
    out: dict[str, dict[str, Any]] = {}
    for lab, bench in results.items():
        for key, res in bench.items():
            if " [" not in key:
                continue
            name, spec = key.split(" [", 1)
            if name in bench:
                per = out.setdefault(lab, {})
                if name not in per:
                    per[name] = robustness_table(bench[name], {})
                per[name]["perturbations"].update(robustness_table(bench[name], {spec.rstrip("]"): res})["perturbations"])
    return out


def _reasoning_lines(b: str, labels: list[str], results: dict) -> list[str]:
    rows = [("mean response tokens", lambda r: r.get("mean_response_tokens"), lambda x: f"{x:.1f}"),
            ("mean response words", lambda r: r.get("mean_response_words"), lambda x: f"{x:.1f}"),
            ("format compliance %", lambda r: r.get("format_compliance"), _pct),
            ("inconsistency rate %", lambda r: (r.get("inconsistency") or {}).get("rate"), _pct)]
    lines = ["| reasoning | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name, get, fmt in rows:
        cells = []
        for lab in labels:
            r = (results[lab].get(b) or {}).get("reasoning") or {}
            v = get(r)
            cells.append("–" if v is None else fmt(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def plot_overall(results: dict[str, dict[str, dict[str, Any]]], path: str | Path) -> Path:
    """Overall score (%) of each benchmark across checkpoints, one line per benchmark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    benchmarks = sorted({b for r in results.values() for b in r})
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(labels) + 2), 3.5), dpi=100)
    for b in benchmarks:
        ys = [100 * results[lab][b]["overall"] if b in results[lab] else float("nan") for lab in labels]
        ax.plot(range(len(labels)), ys, marker="o", label=b)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("overall score (%)")
    ax.set_title("Benchmarks across checkpoints")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.png")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(dirs: list[str | Path], out_dir: str | Path, match: str | None = None) -> dict[str, Path]:
    results = load_results(dirs, match)
    out_dir = Path(out_dir)
    md = out_dir / "report.md"
    atomic_write_text(md, markdown_report(results))
    png = plot_overall(results, out_dir / "report.png")
    summary = {lab: {b: {"overall": r["overall"], "tasks": {t: v["score"] for t, v in r.get("tasks", {}).items()},
                         "reasoning": r.get("reasoning")} for b, r in bench.items()}
               for lab, bench in results.items()}
    summary["robustness"] = robustness_summary(results)
    atomic_write_json(out_dir / "report.json", summary)
    return {"markdown": md, "plot": png, "json": out_dir / "report.json"}
