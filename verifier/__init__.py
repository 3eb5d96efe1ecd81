"""The Rollout-Aware Verifier (VerIPO Fig. 2): per-rollout checks (format, reasoning length, repetition,
accuracy, reasoning/answer consistency by a pluggable judge) and DPO pair construction.

    from veripo.verifier import VerifierConfig, run_verification
    stats = run_verification("rollouts.jsonl", "verify_out/", VerifierConfig())

Modules: config, checks, repetition, judges (rule / openai / hf), verdicts, pairs, pipeline, client,
service (FastAPI ``create_app``), judge_server (OpenAI-compatible local judge), cli.
"""
from __future__ import annotations

__all__ = ["Verifier", "VerifierConfig", "run_verification"]


def __getattr__(name: str):
    if name == "VerifierConfig":
        from veripo.verifier.config import VerifierConfig

        return VerifierConfig
    if name in ("Verifier", "run_verification"):
        from veripo.verifier import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
