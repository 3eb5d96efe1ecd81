"""The verifier with an LLM judge over HTTP (issue 19, item 5): does bounded concurrency keep the judge busy?

    python scripts/bench_judge_service.py [--rollouts 192] [--concurrency 1 2 4 8] [--max-tokens 16] [--json F]

Starts the real ``veripo serve-judge`` (uvicorn, its own process) on the tiny kit on a free loopback port, then, per
``judge.concurrency`` value, verifies the same ``--rollouts`` distinct GRPO rollout records in this process with
the OpenAI-compatible judge (``judge.kind=openai``, the ``openai`` client; no retries, so every judged rollout is
one request; the rule judge as fallback for replies without a verdict). The judge server's ``/metrics`` before and
after give its requests, errors and **busy seconds** (at least one request generating); utilisation = busy
seconds / the verify call's wall time. Reported per concurrency: wall time, judge requests, requests/s, p50 / p99
judge latency (the verdicts' ``judge_latency_s``), utilisation, transport errors (client side: a request that
failed, not a reply without a verdict) and server errors. The tiny kit is a random-weight model: its replies
rarely hold a verdict (the fallback count says how many), which changes nothing about the load it serves.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path



def fetch_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _sibling():
    """``bench_verifier_service.py`` (its realistic rollouts and its server process), loaded from its file, not
    through sys.path, where ``scripts/deepspeed/`` would shadow DeepSpeed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_verifier_service",
                                                  Path(__file__).resolve().parent / "bench_verifier_service.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def judge_server(model: str, threads: int):
    """``veripo serve-judge --model KIT`` on a free loopback port (``with judge_server(...) as (host, port)``)."""
    return _sibling().Service(command=["serve-judge", "--model", model], startup_s=120.0,
                              env={"OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})


def records(n: int, words: int) -> list:
    """``n`` distinct realistic rollout records: those of ``bench_verifier_service.py``."""
    from veripo.verifier.pipeline import parse_rollout

    return [parse_rollout(row) for row in _sibling().rollout_rows(n, words=words)]


def run_one(url: str, recs: list, concurrency: int, max_tokens: int) -> dict:
    from veripo.verifier.config import JudgeConfig, VerifierConfig
    from veripo.verifier.pipeline import Verifier

    judge = JudgeConfig(kind="openai", url=url + "/v1", model="judge", concurrency=concurrency, retries=0,
                        max_tokens=max_tokens, timeout_s=120.0, fallback="rule")
    verifier = Verifier(VerifierConfig(judge=judge))
    before = fetch_json(url + "/metrics")
    t0 = time.perf_counter()
    verdicts = verifier.verify(recs)
    wall = time.perf_counter() - t0
    after = fetch_json(url + "/metrics")
    judged = [v for v in verdicts if v.judge_attempts]
    latencies = sorted(v.judge_latency_s for v in judged)
    transport = sum("unparseable" not in v.judge_detail and v.judge_fallback for v in judged)
    requests = after["requests"] - before["requests"]
    return {"concurrency": concurrency, "wall_s": wall, "rollouts": len(recs), "judged": len(judged),
            "requests": requests, "requests_per_s": requests / wall,
            "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan"),
            "utilisation": (after["busy_s"] - before["busy_s"]) / wall,
            "transport_errors": transport, "server_errors": after["errors"] - before["errors"],
            "fallbacks": sum(v.judge_fallback for v in judged),
            "completion_tokens": after["completion_tokens"] - before["completion_tokens"]}


def report(results: list[dict]) -> str:
    lines = ["| concurrency | wall s | judge requests | requests/s | p50 ms | p99 ms | judge utilisation | "
             "transport errors | server errors | rule fallbacks |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['concurrency']} | {r['wall_s']:.1f} | {r['requests']} | {r['requests_per_s']:.2f} | "
                     f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {100 * r['utilisation']:.0f}% | "
                     f"{r['transport_errors']} | {r['server_errors']} | {r['fallbacks']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rollouts", type=int, default=192)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--max-tokens", type=int, default=16, help="the judge's reply budget (judge.max_tokens)")
    ap.add_argument("--words", type=int, default=60, help="words of reasoning per rollout")
    ap.add_argument("--server-threads", type=int, default=1, help="torch threads of the judge server")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    import veripo  # noqa: F401
    from veripo.models import build_tiny_kit

    with tempfile.TemporaryDirectory(prefix="veripo-bench-judge-") as tmp:
        kit = str(build_tiny_kit(Path(tmp) / "kit"))
        recs = records(args.rollouts, args.words)
        print(f"load average at start {os.getloadavg()}", flush=True)
        results = []
        with judge_server(kit, args.server_threads) as (host, port):
            url = f"http://{host}:{port}"
            run_one(url, recs[:4], 2, args.max_tokens)  # warm-up: first requests load lazily
            for c in args.concurrency:
                results.append(run_one(url, recs, c, args.max_tokens))
                print(f"concurrency {c}: {results[-1]['requests_per_s']:.2f} requests/s, utilisation "
                      f"{100 * results[-1]['utilisation']:.0f}%", flush=True)
        print()
        print(report(results))
        print(f"\nload average at end {os.getloadavg()}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
