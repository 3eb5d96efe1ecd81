"""One function per stage of the loop. Each reads the previous stage's files, writes its own folder, and is
idempotent: when its ``done.json`` exists it returns the recorded summary without work; when its folder
holds a partial run it resumes inside the stage. The shell pipeline (scripts/) calls the same functions
through ``veripo loop stage NAME --iteration N``, so both produce the same files.

Layout (``run_dir``):
    eval-start/                         held-out evaluation of the starting policy
    iter-N/grpo/    rollouts.jsonl, metrics.jsonl, final/ (policy)
    iter-N/verify/  verdicts.jsonl, pairs.jsonl, verify_stats.json
    iter-N/dpo/     ref_logps.pt, metrics.jsonl, final/ (policy)
    iter-N/eval-grpo/, iter-N/eval-dpo/   held-out evaluation after each training stage
    iter-N/excluded_ids.txt             prompts dropped for iteration N+1 (solved ones)
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from veripo.config import from_dict, merge
from veripo.io_utils import atomic_write_json, atomic_write_text, iter_jsonl
from veripo.loop.config import LoopConfig, stage_section
from veripo.records import RolloutRecord

STAGES = ("grpo", "verify", "dpo")


def iter_dir(cfg: LoopConfig, iteration: int) -> Path:
    return Path(cfg.run_dir) / f"iter-{iteration}"


def policy_after(cfg: LoopConfig, iteration: int) -> str:
    """The policy at the end of ``iteration`` (0 = the starting policy)."""
    if iteration == 0:
        return cfg.model_path
    return str(iter_dir(cfg, iteration) / "dpo" / "final")


def _done(path: Path) -> dict[str, Any] | None:
    marker = path / "done.json"
    return json.loads(marker.read_text()) if marker.exists() else None


def excluded_ids_file(cfg: LoopConfig, iteration: int) -> str | None:
    """Prompts the GRPO stage of ``iteration`` skips (written after the previous iteration's GRPO)."""
    if iteration <= 1:
        return None
    path = iter_dir(cfg, iteration - 1) / "excluded_ids.txt"
    return str(path) if path.exists() else None


def run_grpo(cfg: LoopConfig, iteration: int) -> dict[str, Any]:
    from veripo.grpo.config import GRPOConfig
    from veripo.grpo.trainer import GRPOTrainer

    out = iter_dir(cfg, iteration) / "grpo"
    if (done := _done(out / "final")) is not None:
        return done
    section = merge(stage_section(cfg, "grpo", iteration), {
        "model": {"path": policy_after(cfg, iteration - 1)},
        "data": {"train_file": cfg.train_file, "exclude_ids_file": excluded_ids_file(cfg, iteration)},
        "run": {"out_dir": str(out), "seed": cfg.seed + iteration},
    })
    summary = GRPOTrainer(from_dict(GRPOConfig, section)).train(resume=True)
    if launched_rank() == 0:  # under torchrun every rank runs the stage; rank 0 alone writes
        _write_excluded(cfg, iteration, out / "rollouts.jsonl")
    return summary


def launched_rank() -> int:
    """This process's global rank when a launcher (torchrun, deepspeed) started it; 0 otherwise."""
    return int(os.environ.get("RANK", "0") or 0)


def _write_excluded(cfg: LoopConfig, iteration: int, rollouts: Path) -> None:
    """Drop ``drop_solved_ratio`` of the prompts whose every rollout was correct (kept cumulatively)."""
    import numpy as np

    acc: dict[str, list[float]] = {}
    for row in iter_jsonl(rollouts, []):
        rec = RolloutRecord.from_dict(row)
        acc.setdefault(rec.prompt_id, []).append(float(rec.rewards.get("accuracy", 0.0)))
    solved = sorted(pid for pid, v in acc.items() if v and min(v) >= 1.0)
    rng = np.random.default_rng(cfg.seed + 1000 * iteration)
    k = int(round(len(solved) * cfg.drop_solved_ratio))
    dropped = sorted(rng.choice(solved, size=k, replace=False).tolist()) if k else []
    previous = excluded_ids_file(cfg, iteration)
    before = Path(previous).read_text().split() if previous else []
    ids = sorted(set(before) | set(dropped))
    atomic_write_text(iter_dir(cfg, iteration) / "excluded_ids.txt", "".join(i + "\n" for i in ids))


def run_verify(cfg: LoopConfig, iteration: int) -> dict[str, Any]:
    from veripo.verifier.config import VerifierConfig
    from veripo.verifier.pipeline import run_verification

    out = iter_dir(cfg, iteration) / "verify"
    if (done := _done(out)) is not None:
        return done
    vcfg = from_dict(VerifierConfig, stage_section(cfg, "verify", iteration))
    stats = run_verification(iter_dir(cfg, iteration) / "grpo" / "rollouts.jsonl", out, vcfg)
    summary = {k: stats[k] for k in ("rollouts", "judged", "unjudged", "inconsistent", "repetitive", "pairs")
               if k in stats}
    atomic_write_json(out / "done.json", summary)
    return summary


def run_dpo(cfg: LoopConfig, iteration: int) -> dict[str, Any]:
    from veripo.dpo.config import DPOConfig
    from veripo.dpo.trainer import DPOTrainer

    out = iter_dir(cfg, iteration) / "dpo"
    if (done := _done(out / "final")) is not None:
        return done
    pairs = iter_dir(cfg, iteration) / "verify" / "pairs.jsonl"
    grpo_policy = iter_dir(cfg, iteration) / "grpo" / "final"
    if not pairs.exists() or pairs.stat().st_size == 0:  # nothing to contrast: the GRPO policy goes on
        summary = {"steps": 0, "skipped": "no pairs", "final_policy": str(out / "final")}
        if launched_rank() != 0:  # rank 0 alone copies it
            return summary
        tmp = out / ".final.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(grpo_policy, tmp)
        atomic_write_json(tmp / "done.json", summary)
        tmp.rename(out / "final")
        return summary
    section = merge(stage_section(cfg, "dpo", iteration), {
        "model": {"path": str(grpo_policy)}, "pairs_file": str(pairs),
        "run": {"out_dir": str(out), "seed": cfg.seed + iteration},
    })
    return DPOTrainer(from_dict(DPOConfig, section)).train(resume=True)


def run_eval(cfg: LoopConfig, policy: str, out: Path) -> dict[str, Any]:
    """Greedy held-out evaluation of ``policy`` with the eval harness (accuracy, length, inconsistency)."""
    from veripo.eval.cli import build_engine
    from veripo.eval.runner import EvalSettings, run_eval as harness_run

    if (done := _done(out)) is not None:
        return done
    video = {k: v for k, v in cfg.video.items() if k in ("fps", "num_frames", "min_frames", "max_frames",
                                                       "min_pixels", "max_pixels")}
    settings = EvalSettings(benchmark=cfg.eval.benchmark, annotations=str(cfg.test_file),
                            video_dir=str(Path(cfg.test_file).parent), model=policy,
                            max_new_tokens=cfg.eval.max_new_tokens, batch_size=cfg.eval.batch_size,
                            limit=cfg.eval.limit, **video)
    engine = build_engine(policy, settings, kind="hf")
    t0 = time.perf_counter()
    result = harness_run(settings, engine, out, log=lambda _msg: None)
    rm = result.get("reasoning", {})
    sampled = sampled_metrics(engine, cfg) if cfg.eval.samples > 0 else {}
    summary = {"accuracy": result.get("overall"), **sampled,
               "response_tokens": rm.get("mean_response_tokens"),
               "format_rate": rm.get("format_compliance"),
               "inconsistency_rate": (rm.get("inconsistency") or {}).get("rate"),
               "seconds": time.perf_counter() - t0, "policy": policy}
    atomic_write_json(out / "done.json", summary)
    return summary


def sampled_metrics(engine, cfg: LoopConfig) -> dict[str, float | None]:
    """``eval.samples`` answers per held-out question sampled at ``eval.temperature`` (the rollout temperature):
    their mean accuracy (what GRPO optimises; greedy accuracy hides how sure the policy is) and the share the
    judge finds inconsistent (what DPO on the verifier's pairs should lower), over many more answers than greedy."""
    import torch

    from veripo.data.schema import load_samples
    from veripo.eval.reasoning_metrics import default_judge_fn
    from veripo.prompts import question_text
    from veripo.rewards import accuracy_reward, extract_answer, extract_think, format_ok

    rows = load_samples(cfg.test_file)[: cfg.eval.limit]
    torch.manual_seed(cfg.eval.seed)
    groups = engine.generate(rows, n=cfg.eval.samples, temperature=cfg.eval.temperature,
                             max_new_tokens=cfg.eval.max_new_tokens)
    judge, _ = default_judge_fn()
    scores, verdicts = [], []
    for row, group in zip(rows, groups):
        for c in group:
            scores.append(accuracy_reward(c.text, row))
            if judge is not None and format_ok(c.text):
                verdicts.append(judge(question_text(row), extract_think(c.text) or "", extract_answer(c.text) or ""))
    judged = [v for v in verdicts if v in ("consistent", "inconsistent")]
    by_task: dict[str, list[float]] = {}
    for row, group in zip(rows, groups):  # per task type (the synthetic rows' `task`), when the rows have one
        if row.extra.get("task"):
            by_task.setdefault(str(row.extra["task"]), []).extend(accuracy_reward(c.text, row) for c in group)
    return {"sampled_accuracy": sum(scores) / max(1, len(scores)),
            "sampled_inconsistency_rate": (sum(v == "inconsistent" for v in judged) / len(judged)) if judged else None,
            **({"sampled_accuracy_by_task": {t: sum(v) / len(v) for t, v in sorted(by_task.items())}} if by_task else {})}


STAGE_FUNCTIONS = {"grpo": run_grpo, "verify": run_verify, "dpo": run_dpo}
