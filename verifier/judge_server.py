"""An OpenAI-compatible ``/v1/chat/completions`` backed by a local Hugging Face model, for users without
vLLM and for tests (the real ``openai`` client talks to it on loopback).

Supported request fields: model, messages (text content; list-of-parts content keeps the text parts),
max_tokens / max_completion_tokens, temperature (0 = greedy), top_p, n, seed. ``stream`` is refused
with 400. The reply carries ``usage`` token counts (prompt tokens counted once; completion tokens
summed over the n choices, the end-of-sequence token included). ``GET /metrics``: requests served, completion
tokens, and the seconds during which at least one request was generating (``busy_s``), from which a client
computes the judge's utilisation over a window: ``(busy_s after - busy_s before) / window``.
"""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from veripo.verifier.local_model import LocalChatModel


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[dict[str, Any]] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    seed: int | None = None
    stream: bool = False


class BusyMeter:
    """Seconds with at least one request in flight (overlapping requests count once), and counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._since = 0.0
        self._busy = 0.0
        self.started = time.monotonic()
        self.requests = self.completion_tokens = self.errors = 0

    def __enter__(self) -> "BusyMeter":
        with self._lock:
            if self._in_flight == 0:
                self._since = time.monotonic()
            self._in_flight += 1
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._busy += time.monotonic() - self._since
            self.requests += 1
            self.errors += exc_type is not None

    def count_tokens(self, n: int) -> None:
        with self._lock:  # requests finish on several threads at once
            self.completion_tokens += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            busy = self._busy + (now - self._since if self._in_flight else 0.0)
            return {"requests": self.requests, "errors": self.errors, "in_flight": self._in_flight,
                    "completion_tokens": self.completion_tokens, "busy_s": busy, "uptime_s": now - self.started}


def create_judge_app(model: LocalChatModel | str, model_name: str = "judge", max_tokens_limit: int = 4096,
                     max_n: int = 16) -> FastAPI:
    lm = LocalChatModel.load(model) if isinstance(model, str) else model
    app = FastAPI(title="veripo local judge (OpenAI-compatible)", version="1")
    app.state.model = lm
    meter = app.state.meter = BusyMeter()

    @app.exception_handler(HTTPException)
    async def openai_style_error(request, exc: HTTPException):  # {"error": {...}} as OpenAI clients expect
        return JSONResponse({"error": {"message": exc.detail, "type": "invalid_request_error", "code": None}},
                            status_code=exc.status_code)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name}

    @app.get("/metrics")
    def metrics() -> dict[str, Any]:
        return meter.snapshot()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "veripo"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        if req.stream:
            raise HTTPException(400, "stream=true is not supported by veripo serve-judge")
        if req.n > max_n:
            raise HTTPException(400, f"n={req.n} exceeds the limit of {max_n}")
        budget = req.max_completion_tokens or req.max_tokens or 256
        if budget > max_tokens_limit:
            raise HTTPException(400, f"max_tokens={budget} exceeds the limit of {max_tokens_limit}")
        with meter:
            gen = lm.generate(req.messages, max_tokens=budget, temperature=req.temperature, n=req.n,
                              top_p=req.top_p, seed=req.seed)
            meter.count_tokens(gen.completion_tokens)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": req.model or model_name,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason,
                         "logprobs": None}
                        for i, (text, reason) in enumerate(zip(gen.texts, gen.finish_reasons))],
            "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                      "total_tokens": gen.prompt_tokens + gen.completion_tokens},
        }

    return app
