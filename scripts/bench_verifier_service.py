"""Load generator: the verifier service's throughput over HTTP on loopback with the rule judge.

    python scripts/bench_verifier_service.py [--batch 256] [--clients 1 8 32] [--seconds 4] [--split 40] [--json F]

For each client count, starts the real service afresh (``veripo serve-verifier`` in its own process, rule judge, no
auth on 127.0.0.1, an empty verdict cache), checks that one batch comes back with the same verdicts as the in-process
``Verifier``, then runs that many threads for ``--seconds`` (after a short warm-up), each posting ``POST /v1/verify``
batches of ``--batch`` rollouts back to back on its own keep-alive connection. Reported per client count: rollouts/s
(verdicts returned / wall time), requests, p50 / p99 request latency, errors. Every response is checked: HTTP 200
and one verdict per rollout.

First (``--split``), the service's per-batch work is timed part by part in this process (:func:`server_split`).

The rollouts are realistic GRPO records (what ``rollouts.jsonl`` holds): the example task rows of
``veripo.verifier.examples`` (multiple choice, numeric; consistent, inconsistent, repetitive, badly formatted,
truncated responses), each response lengthened with reasoning sentences to about ``--words`` words, with
``token_ids`` and float ``logps`` of about 1.3 tokens a word, rewards, advantage and timings. Every rollout id and
response is distinct and no body is sent twice to one service (``--rollouts`` is more than a run sends; the script
reports the cache hits from ``/metrics`` and warns otherwise), so every verdict is computed. Request bodies are encoded
once before the clock starts, so the clients spend their time on HTTP, not JSON. The clients share the 2 cores with
the service: the figure is for the service and a load generator on one machine.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

FILLER = ["The square stays near the centre of the frame.", "In frame {k} the object has moved a little to the right.",
          "The background is dark grey with some noise.", "I compare frame {k} with the first one.",
          "Its colour does not change between frames.", "Nothing else appears in the clip at step {k}."]


def rollout_rows(n: int, words: int = 120, seed: int = 0, start: int = 0) -> list[dict]:
    """Rollout rows ``start .. start + n - 1`` (dicts as in rollouts.jsonl) built from the example rollouts; every row
    has its own id and response text (row ``i``'s reasoning names ``i``), so no two share a content hash."""
    from veripo.verifier.examples import example_rollouts

    rng = random.Random(seed * 1_000_003 + start)
    base = example_rollouts()
    rows = []
    for i in range(start, start + n):
        rec = base[i % len(base)]
        d = rec.to_dict()
        step, index = i // len(base), i % len(base)
        d["rollout_id"] = f"{step}-{rec.sample.problem_id}-{index}"
        d["group_id"] = f"{step}-{rec.sample.problem_id}"
        d["step"] = step
        pad = [f"This is look {i} at the clip."]
        while len(" ".join(pad).split()) < max(0, words - len(rec.response.split())):
            pad.append(rng.choice(FILLER).format(k=rng.randrange(1000)))
        response = rec.response
        if "<think>" in response:
            response = response.replace("<think>", "<think> " + " ".join(pad), 1)
        else:
            response = " ".join(pad) + " " + response
        d["response"] = response
        n_tokens = int(len(response.split()) * 1.3)
        d["token_ids"] = [rng.randrange(151_000) for _ in range(n_tokens)]
        d["logps"] = [-rng.expovariate(2.0) for _ in range(n_tokens)]
        d["rewards"] = {"accuracy": 1.0, "format": 1.0, "total": 1.5}
        d["advantage"] = rng.gauss(0.0, 1.0)
        d["timings"] = {"generate_s": rng.uniform(0.5, 2.0)}
        rows.append(d)
    return rows


def request_bodies(n_bodies: int, batch: int, words: int = 120) -> list[bytes]:
    """``n_bodies`` encoded ``/v1/verify`` bodies of ``batch`` distinct rollouts each (no rollout in two bodies)."""
    return [json.dumps({"rollouts": rollout_rows(batch, words, start=k * batch)}).encode() for k in range(n_bodies)]


def cache_hits(host: str, port: int) -> int:
    """The service's ``veripo_verifier_cache_hits_total`` (verdicts whose judge call the cache answered)."""
    status, data = post(host, port, "GET", "/metrics", None)
    line = next(l for l in data.decode().splitlines() if l.startswith("veripo_verifier_cache_hits_total"))
    return int(float(line.split()[-1]))


class Service:
    """A ``veripo`` server command (default ``serve-verifier``) on a free loopback port, in its own process, ready
    once ``/health`` answers; ``with Service() as (host, port)``. ``command``: the subcommand and its arguments
    (``--host`` and ``--port`` are added); ``env``: extra environment variables for it."""

    def __init__(self, max_batch: int = 256, extra: list[str] | None = None, startup_s: float = 60.0,
                 command: list[str] | None = None, env: dict[str, str] | None = None):
        from veripo.verifier.serving import free_port

        self.host, self.port = "127.0.0.1", free_port()
        command = command or ["serve-verifier", "--max-batch", str(max_batch), *(extra or [])]
        self.name = command[0]
        self.cmd = [sys.executable, "-m", "veripo.cli", *command, "--host", self.host, "--port", str(self.port)]
        self.extra_env = env or {}
        self.startup_s = startup_s
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> tuple[str, int]:
        env = {k: v for k, v in os.environ.items() if k != "VERIPO_VERIFIER_TOKEN"}  # no auth on loopback
        self.proc = subprocess.Popen(self.cmd, env={**env, **self.extra_env}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                status, _ = post(self.host, self.port, "GET", "/health", None)
                if status == 200:
                    return self.host, self.port
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /health within {self.startup_s} s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def post(host: str, port: int, method: str, path: str, body: bytes | None, conn=None) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection(host, port, timeout=120)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        if own:
            conn.close()


def check_verdicts(host: str, port: int, rows: list[dict]) -> int:
    """POST ``rows`` once and compare with the in-process Verifier; returns the number of verdicts compared."""
    from veripo.verifier.pipeline import Verifier, parse_rollout

    status, data = post(host, port, "POST", "/v1/verify", json.dumps({"rollouts": rows}).encode())
    if status != 200:
        raise RuntimeError(f"/v1/verify answered {status}: {data[:300]!r}")
    remote = json.loads(data)["verdicts"]
    local = [v.to_dict() for v in Verifier().verify([parse_rollout(r) for r in rows])]
    for r, l in zip(remote, local):
        r.pop("judge_latency_s"), l.pop("judge_latency_s")
    if remote != local:
        raise RuntimeError("the service's verdicts differ from the in-process Verifier's")
    return len(remote)


def run_load(host: str, port: int, bodies: list[bytes], batch: int, clients: int, seconds: float,
             warmup_s: float = 1.0) -> dict:
    """``clients`` threads posting ``bodies`` back to back for ``seconds`` (after ``warmup_s``): the requests that
    complete inside the measured window count (throughput) and give the latencies; none starts after it."""
    latencies: list[float] = []
    errors: list[str] = []
    sent = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    t_measure = [0.0]
    t_stop = [0.0]

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        mine: list[float] = []
        i = k
        start.wait()
        while True:
            t = time.perf_counter()
            if t >= t_stop[0]:
                break
            with lock:
                sent[0] += 1
            try:
                status, data = post(host, port, "POST", "/v1/verify", bodies[i % len(bodies)], conn)
            except OSError as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=120)
                continue
            done = time.perf_counter()
            i += clients
            if status != 200 or data.count(b'"content_hash"') != batch:
                with lock:
                    errors.append(f"HTTP {status}: {data[:120]!r}")
            elif t_measure[0] <= done <= t_stop[0]:  # completed inside the measured window
                mine.append(done - t)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for th in threads:
        th.start()
    now = time.perf_counter()
    t_measure[0], t_stop[0] = now + warmup_s, now + warmup_s + seconds
    start.wait()
    for th in threads:
        th.join()
    lat = sorted(latencies)
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3) if lat else (lambda p: float("nan"))
    return {"clients": clients, "batch": batch, "requests": len(lat), "requests_sent": sent[0], "errors": len(errors),
            "error_sample": errors[:3],
            "rollouts_per_s": len(lat) * batch / seconds, "p50_ms": q(0.50), "p99_ms": q(0.99),
            "mean_ms": statistics.fmean(lat) * 1e3 if lat else float("nan")}


def server_split(bodies: list[bytes], max_batch: int = 256) -> dict:
    """Median ms per body of each part of the service's ``/v1/verify`` work, in this process (no HTTP): JSON parse,
    request model, row parsing, ``Verifier.verify``, and the response as the service now builds it vs the
    ``jsonable_encoder`` walk of ``dataclasses.asdict`` verdicts that FastAPI did before (issue 19, item 5)."""
    import dataclasses

    from fastapi.encoders import jsonable_encoder
    from starlette.responses import JSONResponse

    from veripo.verifier.pipeline import Verifier
    from veripo.verifier.service import VerifyRequest, _json_response, _parse_rows

    parts: dict[str, list[float]] = {k: [] for k in ("json", "model", "parse", "verify", "response", "response_before")}
    for body in bodies:
        t0 = time.perf_counter()
        data = json.loads(body)
        t1 = time.perf_counter()
        req = VerifyRequest.model_validate(data)
        t2 = time.perf_counter()
        records = _parse_rows(req.rollouts, max_batch)
        t3 = time.perf_counter()
        verdicts = Verifier().verify(records)
        t4 = time.perf_counter()
        now = _json_response({"verdicts": [v.to_dict() for v in verdicts]}).body
        t5 = time.perf_counter()
        before = JSONResponse(jsonable_encoder({"verdicts": [dataclasses.asdict(v) for v in verdicts]})).body
        t6 = time.perf_counter()
        if json.loads(now) != json.loads(before):
            raise RuntimeError("the two response paths disagree")
        for k, a, b in zip(parts, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
            parts[k].append(b - a)
    ms = {k: statistics.median(v) * 1e3 for k, v in parts.items()}
    common = ms["json"] + ms["model"] + ms["parse"] + ms["verify"]
    return {**ms, "batch_ms": common + ms["response"], "batch_ms_before": common + ms["response_before"],
            "ratio": (common + ms["response_before"]) / (common + ms["response"])}


def report(results: list[dict]) -> str:
    lines = ["| clients | batch | requests | rollouts/s | p50 ms | p99 ms | errors |", "|---" * 7 + "|"]
    for r in results:
        lines.append(f"| {r['clients']} | {r['batch']} | {r['requests']} | **{r['rollouts_per_s']:.0f}** | "
                     f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=256, help="rollouts per request (the service's default limit)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=4.0, help="measured seconds per client count (after 1 s warm-up)")
    p.add_argument("--rollouts", type=int, default=32768,
                   help="distinct rollouts (more than one client count's run sends, so the cache never answers)")
    p.add_argument("--words", type=int, default=120, help="words per response (about)")
    p.add_argument("--split", type=int, default=40, help="bodies to time in-process part by part first (0: none)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import veripo  # noqa: F401

    n_bodies = -(-args.rollouts // args.batch)
    bodies = request_bodies(n_bodies, args.batch, args.words)
    print(f"{n_bodies * args.batch} distinct rollouts in {n_bodies} bodies of {args.batch} "
          f"({statistics.fmean(len(b) for b in bodies) / args.batch / 1024:.1f} KiB a rollout)", flush=True)
    if args.split:
        print(f"server-side split, ms per body: {json.dumps(server_split(bodies[:args.split]))}", flush=True)
    results = []
    for c in args.clients:  # a fresh service for each client count: its verdict cache starts empty
        with Service(max_batch=args.batch) as (host, port):
            checked = check_verdicts(host, port, rollout_rows(args.batch, args.words, start=n_bodies * args.batch))
            hits = cache_hits(host, port)
            load = os.getloadavg()
            r = run_load(host, port, bodies, args.batch, c, args.seconds)
            r.update(load_before=load, verdicts_checked=checked, cache_hits=cache_hits(host, port) - hits,
                     rollouts_sent=r["requests_sent"] * args.batch)
        results.append(r)
        print(json.dumps(r), flush=True)
        if r["requests_sent"] > n_bodies:
            print(f"warning: {r['requests_sent']} requests cycled through {n_bodies} bodies: the cache answered "
                  f"{r['cache_hits']} judge calls; pass a larger --rollouts", flush=True)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
