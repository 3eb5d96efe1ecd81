"""``veripo verify``: judge a rollouts.jsonl and build pairs.jsonl (in-process or through a service).

    veripo verify --rollouts run/grpo/rollouts.jsonl --out run/verify
    veripo verify --rollouts R --out D --judge openai --judge-url http://127.0.0.1:8000/v1 --judge-model qwen
    veripo verify --rollouts R --out D --service http://verifier:8100      # token: $VERIPO_VERIFIER_TOKEN

Writes D/verdicts.jsonl, D/pairs.jsonl, D/verify_stats.json; rerunning on complete outputs is a no-op.
"""
from __future__ import annotations

import argparse
import json
import sys

HELP = "Rollout-Aware Verifier: judge rollouts and build pairs.jsonl (in-process or via a service)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from veripo.cli import add_config_arguments
    from veripo.verifier.judges import JUDGES

    parser.add_argument("--rollouts", help="rollouts.jsonl written by the GRPO stage")
    parser.add_argument("--out", help="output directory")
    parser.add_argument("--judge", choices=list(JUDGES), default=None,
                        help="consistency judge (config judge.kind; default rule)")
    parser.add_argument("--judge-url", default=None, help="OpenAI-compatible base URL (config judge.url)")
    parser.add_argument("--judge-model", default=None, help="judge model name / local path (config judge.model)")
    parser.add_argument("--service", default=None,
                        help="verify through this veripo serve-verifier URL (bearer token from $VERIPO_VERIFIER_TOKEN, "
                             "never a flag; service_concurrency / service_retries set in-flight requests and retries)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from veripo.config import describe, load_config
    from veripo.verifier.config import VerifierConfig
    from veripo.verifier.pipeline import run_verification

    if args.show_config:
        print(describe(VerifierConfig))
        return 0
    if not args.rollouts or not args.out:
        print("veripo verify: --rollouts and --out are required")
        return 2
    overrides = list(args.overrides)
    for flag, key in ((args.judge, "judge.kind"), (args.judge_url, "judge.url"),
                      (args.judge_model, "judge.model"), (args.service, "service_url")):
        if flag:
            overrides.append(f"{key}={json.dumps(flag)}")  # quoted: "none" stays a string
    cfg = load_config(VerifierConfig, args.config, overrides)
    stats = run_verification(args.rollouts, args.out, cfg, progress=not args.no_progress)
    keys = ("rollouts", "malformed", "judged", "unjudged", "inconsistent", "repetitive", "pairs")
    print(json.dumps({k: stats[k] for k in keys}, indent=None))
    if stats.get("skipped_complete"):
        print(f"outputs in {args.out} were already complete; nothing to do")
    for row in stats.get("malformed_rows", [])[:10]:
        print(f"skipped malformed row: {row}")
    if stats.get("malformed"):
        print(f"{stats['malformed']} malformed row(s) set aside: see {args.out}/rejects.jsonl")
    failures = stats.get("judge_failures") or {}
    if failures:  # a judge that fails every call must not pass unnoticed
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(failures.items(), key=lambda kv: -kv[1]))
        print(f"judge failures: {sum(failures.values())} of {stats['rollouts']} rollouts ({kinds}); "
              f"{stats['unjudged']} left unjudged (never chosen), {stats.get('judge_fallbacks', 0)} judged by the "
              "rule fallback", file=sys.stderr)
    return 0
