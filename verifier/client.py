"""HTTP client of ``veripo serve-verifier``: the same ``verify`` / ``pairs_for_group`` as the in-process
:class:`~veripo.verifier.pipeline.Verifier`, so :func:`run_verification` works against either.

One service can serve a whole job (several trainers, several ``veripo verify``): each client

* authenticates with the bearer token from an environment variable (``token_env``, default
  ``$VERIPO_VERIFIER_TOKEN``), never from a command-line flag (other users of the machine can read command lines);
* keeps at most ``concurrency`` requests in flight (a ``verify`` call is cut into that many requests, and threads
  sharing one client share the bound), so no client can take every worker of the service;
* retries what a restart or an overload looks like - connection refused or reset, timeouts, 429, 5xx - with
  exponential backoff (``backoff_s``, doubling, at most ``max_backoff_s``) up to ``retries`` times, so a service
  restarted mid-run costs a pause, not the run. Verifying is a pure function of the rollout (the service's cache is
  keyed by content), so a repeated request gives the same verdicts. A 4xx other than 429 is our fault: raised at once.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from veripo.errors import JudgeError
from veripo.redact import redact_text, redact_url
from veripo.records import PairRecord, RolloutRecord
from veripo.verifier.verdicts import Verdict

log = logging.getLogger(__name__)
RETRY_STATUS = {429, 500, 502, 503, 504}


class VerifierClient:
    def __init__(self, url: str, token: str | None = None, token_env: str = "VERIPO_VERIFIER_TOKEN",
                 timeout_s: float = 300.0, retries: int = 8, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 concurrency: int = 4):
        if concurrency < 1:
            raise ValueError(f"verifier client concurrency must be at least 1, got {concurrency}")
        self.url = url.rstrip("/")
        self.shown_url = redact_url(self.url)  # what error messages say (never the password)
        token = token or os.environ.get(token_env)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_s, self.retries, self.backoff_s, self.max_backoff_s = timeout_s, retries, backoff_s, max_backoff_s
        self.concurrency = concurrency
        self.retried = 0  # attempts that failed and were retried (for logs and tests)
        self._http = httpx.Client(timeout=timeout_s, headers=self.headers,
                                  limits=httpx.Limits(max_connections=concurrency))
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="verifier-client")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    def __enter__(self) -> "VerifierClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        delay, last = self.backoff_s, ""
        for attempt in range(self.retries + 1):
            try:
                r = self._http.post(self.url + path, json=body)
            except httpx.HTTPError as e:
                last = redact_text(f"{type(e).__name__}: {e}")
            else:
                if r.status_code == 200:
                    return r.json()
                if r.status_code not in RETRY_STATUS:  # our request is wrong: retrying will not help
                    raise JudgeError(f"verifier service {self.shown_url}{path} answered {r.status_code}: {r.text[:500]}")
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            if attempt < self.retries:
                with self._lock:
                    self.retried += 1
                log.warning("verifier service %s%s: %s; retry %d/%d in %.1f s", self.shown_url, path, last, attempt + 1,
                            self.retries, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
        raise JudgeError(f"verifier service {self.shown_url}{path} failed after {self.retries + 1} attempts: {last}")

    def verify(self, records: list[RolloutRecord]) -> list[Verdict]:
        """Verdicts for ``records``, in order: up to ``concurrency`` requests of consecutive rollouts in flight."""
        if not records:
            return []
        size = -(-len(records) // self.concurrency)
        chunks = [records[i:i + size] for i in range(0, len(records), size)]
        futures = [self._pool.submit(self._post, "/v1/verify", {"rollouts": [r.to_dict() for r in c]})
                   for c in chunks]
        return [Verdict.from_dict(v) for f in futures for v in f.result()["verdicts"]]

    def pairs_for_group(self, records: list[RolloutRecord], verdicts: list[Verdict]) -> tuple[list[PairRecord], str | None]:
        data = self._pool.submit(self._post, "/v1/pairs", {"rollouts": [r.to_dict() for r in records],
                                                           "verdicts": [v.to_dict() for v in verdicts]}).result()
        return [PairRecord.from_dict(p) for p in data["pairs"]], data.get("skipped")
