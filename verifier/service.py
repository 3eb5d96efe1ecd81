"""The verifier as an HTTP service (FastAPI), shared by several trainers.

    POST /v1/verify   {"rollouts": [RolloutRecord, ...]}                  -> {"verdicts": [Verdict, ...]}
    POST /v1/pairs    {"rollouts": [one group], "verdicts": [optional]}    -> {"pairs": [PairRecord], "skipped": why}
    GET  /health      liveness + judge identity (no auth)
    GET  /metrics     Prometheus text: requests, verdicts by label, pairs by kind, judge latency, cache hits
    GET  /docs, /openapi.json   FastAPI's schema

Bearer-token auth on /v1/* and /metrics when a token is set; bodies over ``max_body_bytes`` and batches
over ``max_batch`` get 413, malformed rows 422, each with a message naming the row and the problem.
Judge calls are bounded by the judge's own concurrency (shared by all requests); verdicts are cached
by content hash (response + question + gold + config).
"""
from __future__ import annotations

import hmac
import json
import threading
from collections import Counter
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from veripo.verifier.config import VerifierConfig
from veripo.verifier.pipeline import Verifier, parse_rollout
from veripo.verifier.verdicts import CONSISTENCY_LABELS, Verdict


class VerifyRequest(BaseModel):
    rollouts: list[dict[str, Any]] = Field(..., description="RolloutRecord rows (rollouts.jsonl objects)")


class VerifyResponse(BaseModel):
    verdicts: list[dict[str, Any]] = Field(..., description="One Verdict per rollout, in request order")


def _json_response(content: dict[str, Any]) -> Response:
    """``content`` as JSON bytes, serialised once (no ``jsonable_encoder`` pass: the values are plain JSON types)."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return Response(body, media_type="application/json")


class PairsRequest(BaseModel):
    rollouts: list[dict[str, Any]] = Field(..., description="The rollouts of one group (same group_id)")
    verdicts: list[dict[str, Any]] | None = Field(None, description="Their verdicts; computed when omitted")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter = Counter()
        self.verdicts: Counter = Counter()
        self.pairs: Counter = Counter()

    def render(self, verifier: Verifier) -> str:
        with self._lock:
            lines = ["# HELP veripo_verifier_requests_total HTTP requests by path and status.",
                     "# TYPE veripo_verifier_requests_total counter"]
            lines += [f'veripo_verifier_requests_total{{path="{p}",status="{s}"}} {n}'
                      for (p, s), n in sorted(self.requests.items())]
            lines += ["# HELP veripo_verifier_verdicts_total Verdicts returned, by consistency label.",
                      "# TYPE veripo_verifier_verdicts_total counter"]
            lines += [f'veripo_verifier_verdicts_total{{consistency="{c}"}} {self.verdicts[c]}'
                      for c in CONSISTENCY_LABELS]
            lines += ["# HELP veripo_verifier_pairs_total Pairs returned, by kind.",
                      "# TYPE veripo_verifier_pairs_total counter"]
            lines += [f'veripo_verifier_pairs_total{{kind="{k}"}} {self.pairs[k]}' for k in ("quality", "reflective", "single")]
        lines += ["# HELP veripo_verifier_judge_latency_seconds Time spent in judge calls (retries included).",
                  "# TYPE veripo_verifier_judge_latency_seconds summary",
                  f"veripo_verifier_judge_latency_seconds_sum {verifier.judge_seconds:.6f}",
                  f"veripo_verifier_judge_latency_seconds_count {verifier.judge_calls}",
                  "# HELP veripo_verifier_cache_hits_total Verdicts served from the content-hash cache.",
                  "# TYPE veripo_verifier_cache_hits_total counter",
                  f"veripo_verifier_cache_hits_total {verifier.cache_hits}"]
        return "\n".join(lines) + "\n"


def _parse_rows(rows: list[dict[str, Any]], max_batch: int) -> list:
    if len(rows) > max_batch:
        raise HTTPException(413, f"batch of {len(rows)} rollouts exceeds the limit of {max_batch}; send smaller batches")
    if not rows:
        raise HTTPException(422, "rollouts is empty")
    records = []
    for i, row in enumerate(rows):
        try:
            records.append(parse_rollout(row))
        except (ValueError, TypeError) as e:
            raise HTTPException(422, f"rollouts[{i}]: {e}") from None
    return records


def create_app(config: VerifierConfig | None = None, *, token: str | None = None, verifier: Verifier | None = None,
               max_batch: int = 256, max_body_bytes: int = 16 * 1024 * 1024) -> FastAPI:
    """The service app; ``token`` None/empty disables auth (loopback use only)."""
    verifier = verifier or Verifier(config or VerifierConfig())
    metrics = Metrics()
    app = FastAPI(title="veripo Rollout-Aware Verifier", version="1",
                  description="Judge GRPO rollouts (format, length, repetition, accuracy, consistency) and "
                              "build DPO pairs (VerIPO).")
    app.state.verifier, app.state.metrics = verifier, metrics

    @app.middleware("http")
    async def limits_and_counts(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            response = JSONResponse({"detail": f"request body of {length} bytes exceeds the limit of "
                                               f"{max_body_bytes} bytes; send smaller batches"}, status_code=413)
        elif length is None and request.method == "POST":
            body = await request.body()  # chunked upload: measure it
            response = (JSONResponse({"detail": f"request body of {len(body)} bytes exceeds the limit of "
                                                f"{max_body_bytes} bytes"}, status_code=413)
                        if len(body) > max_body_bytes else await call_next(request))
        else:
            response = await call_next(request)
        with metrics._lock:
            metrics.requests[(request.url.path, response.status_code)] += 1
        return response

    def auth(request: Request) -> None:
        if not token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "judge": verifier.judge.name, "prompt_version": verifier.prompt_version}

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(auth)])
    def prometheus() -> str:
        return metrics.render(verifier)

    @app.post("/v1/verify", dependencies=[Depends(auth)], response_model=VerifyResponse)
    def verify(req: VerifyRequest) -> Response:
        records = _parse_rows(req.rollouts, max_batch)
        verdicts = verifier.verify(records)
        with metrics._lock:
            metrics.verdicts.update(v.consistency for v in verdicts)
        # serialised here: FastAPI's jsonable_encoder walk of the verdicts cost ~10% of a batch (issue 19 item 5)
        return _json_response({"verdicts": [v.to_dict() for v in verdicts]})

    @app.post("/v1/pairs", dependencies=[Depends(auth)])
    def pairs(req: PairsRequest) -> dict[str, Any]:
        records = _parse_rows(req.rollouts, max_batch)
        if req.verdicts is None:
            verdicts = verifier.verify(records)
        else:
            try:
                verdicts = [Verdict.from_dict(v) for v in req.verdicts]
            except TypeError as e:
                raise HTTPException(422, f"verdicts: {e}") from None
            missing = {r.rollout_id for r in records} - {v.rollout_id for v in verdicts}
            if missing:
                raise HTTPException(422, f"verdicts: no verdict for rollout(s) {sorted(missing)[:5]}")
        out, skipped = verifier.pairs_for_group(records, verdicts)
        with metrics._lock:
            metrics.pairs.update(p.kind for p in out)
        return {"pairs": [p.to_dict() for p in out], "skipped": skipped}

    return app
