"""Run the loop's stages in order, skipping finished ones, with a manifest of what finished.

``manifest.json`` records each finished stage (its summary and seconds); ``summary.md`` is the per-stage
table: held-out accuracy, response length, inconsistency rate, and time per stage.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from veripo.config import config_record, save_config
from veripo.errors import VeripoError
from veripo.io_utils import atomic_write_json, atomic_write_text
from veripo.loop.config import LoopConfig
from veripo.loop.stages import STAGE_FUNCTIONS, iter_dir, policy_after, run_eval


def plan(cfg: LoopConfig) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """(stage key, thunk) in execution order."""
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    evaluate = cfg.eval.enabled and bool(cfg.test_file)
    if evaluate:
        steps.append(("eval-start", lambda: run_eval(cfg, policy_after(cfg, 0), Path(cfg.run_dir) / "eval-start")))
    for it in range(1, cfg.iterations + 1):
        for stage in ("grpo", "verify", "dpo"):
            steps.append((f"iter-{it}/{stage}", lambda s=stage, i=it: STAGE_FUNCTIONS[s](cfg, i)))
            if evaluate and stage in ("grpo", "dpo"):
                policy = str(iter_dir(cfg, it) / stage / "final")
                steps.append((f"iter-{it}/eval-{stage}",
                              lambda p=policy, i=it, s=stage: run_eval(cfg, p, iter_dir(cfg, i) / f"eval-{s}")))
    return steps


class Manifest:
    def __init__(self, run_dir: Path):
        self.path = run_dir / "manifest.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {"stages": {}}

    def done(self, key: str) -> bool:
        return self.data["stages"].get(key, {}).get("status") == "done"

    def record(self, key: str, summary: dict[str, Any], seconds: float) -> None:
        self.data["stages"][key] = {"status": "done", "seconds": seconds, "finished_at": time.time(),
                                    "summary": summary}
        atomic_write_json(self.path, self.data)


def _check_config(cfg: LoopConfig, run_dir: Path, resume: bool) -> None:
    saved = run_dir / "loop_config.yaml"
    if saved.exists() and not resume:
        raise VeripoError(f"{run_dir} already holds a loop run; pass --resume to continue it, or choose another run_dir")
    if saved.exists():
        import yaml

        old = yaml.safe_load(saved.read_text())
        new = config_record(cfg)  # as saved: credentials redacted
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k != "iterations")
        if changed:
            raise VeripoError(f"{saved}: the run was started with a different config ({', '.join(changed)} changed)")
    save_config(cfg, saved)


def stage_kind(key: str) -> str:
    """``iter-2/eval-dpo`` -> ``eval``; ``iter-1/grpo`` -> ``grpo``."""
    name = key.split("/")[-1]
    return "eval" if name.startswith("eval") else name


def run_loop(cfg: LoopConfig, resume: bool = False, log: Callable[[str], None] = print,
             stop_after: str | None = None, budget: dict[str, float] | None = None) -> dict[str, Any]:
    """Run (or continue) every stage; returns the manifest. ``stop_after`` ends after that stage key.

    ``budget`` (stage kind -> expected seconds) turns the progress lines into an estimate of the time left,
    rescaled by how fast the finished stages actually ran on this machine."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(cfg, run_dir, resume)
    manifest = Manifest(run_dir)
    steps = plan(cfg)
    started = time.perf_counter()
    spent = expected_spent = 0.0
    for n, (key, thunk) in enumerate(steps, 1):
        if manifest.done(key):
            log(f"[{n}/{len(steps)}] {key}: done earlier, skipped")
        else:
            eta = ""
            if budget:
                left = sum(budget.get(stage_kind(k), 0.0) for k, _ in steps[n - 1:] if not manifest.done(k))
                speed = spent / expected_spent if expected_spent > 0 else 1.0
                eta = f", about {left * speed:.0f}s left"
            log(f"[{n}/{len(steps)}] {key}: running (elapsed {time.perf_counter() - started:.0f}s{eta})")
            t0 = time.perf_counter()
            summary = thunk()
            took = time.perf_counter() - t0
            manifest.record(key, summary, took)
            spent += took
            expected_spent += (budget or {}).get(stage_kind(key), 0.0)
            log(f"[{n}/{len(steps)}] {key}: finished in {took:.1f}s")
        if key == stop_after:
            break
    atomic_write_text(run_dir / "summary.md", summary_table(manifest.data))
    return manifest.data


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else (f"{v:.1f}" if isinstance(v, float) else str(v))


def summary_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per held-out evaluation, with the time of the training stage that produced the policy."""
    stages = manifest["stages"]
    rows = []
    for key, entry in stages.items():
        if "eval" not in key:
            continue
        s = entry["summary"]
        trained = key.replace("eval-", "")
        rows.append({"after": "start" if key == "eval-start" else trained,
                     "accuracy": s.get("accuracy"), "sampled_accuracy": s.get("sampled_accuracy"),
                     "sampled_inconsistency_rate": s.get("sampled_inconsistency_rate"),
                     "response_tokens": s.get("response_tokens"),
                     "format_rate": s.get("format_rate"), "inconsistency_rate": s.get("inconsistency_rate"),
                     "stage_seconds": stages.get(trained, {}).get("seconds")})
    return rows


def summary_table(manifest: dict[str, Any]) -> str:
    lines = ["| after | held-out accuracy (greedy) | sampled accuracy | inconsistency (sampled) | inconsistency "
             "(greedy) | response tokens | format | stage time (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in summary_rows(manifest):
        lines.append(f"| {r['after']} | {_fmt(r['accuracy'], True)} | {_fmt(r['sampled_accuracy'], True)} | "
                     f"{_fmt(r['sampled_inconsistency_rate'], True)} | {_fmt(r['inconsistency_rate'], True)} | "
                     f"{_fmt(r['response_tokens'])} | {_fmt(r['format_rate'], True)} | "
                     f"{_fmt(r['stage_seconds'])} |")
    other = [(k, e) for k, e in manifest["stages"].items() if "eval" not in k]
    if other:
        lines += ["", "| stage | seconds | key figures |", "|---|---|---|"]
        for k, e in other:
            s = e["summary"]
            figures = {kk: vv for kk, vv in s.items() if isinstance(vv, (int, float)) and kk != "seconds"}
            shown = ", ".join(f"{kk}={vv:.3g}" if isinstance(vv, float) else f"{kk}={vv}" for kk, vv in list(figures.items())[:6])
            lines.append(f"| {k} | {e['seconds']:.1f} | {shown} |")
    return "\n".join(lines) + "\n"
