"""HTTP client of ``veripo serve-verifier``: the same ``verify`` / ``pairs_for_group`` as the in-process
:class:`~veripo.verifier.pipeline.Verifier`, so :func:`run_verification` works against either."""
from __future__ import annotations

import os
import time
from typing import Any

import httpx

from veripo.errors import JudgeError
from veripo.redact import redact_text, redact_url
from veripo.records import PairRecord, RolloutRecord
from veripo.verifier.verdicts import Verdict


class VerifierClient:
    def __init__(self, url: str, token: str | None = None, token_env: str = "VERIPO_VERIFIER_TOKEN",
                 timeout_s: float = 300.0, retries: int = 3, backoff_s: float = 1.0):
        self.url = url.rstrip("/")
        self.shown_url = redact_url(self.url)  # what error messages say (never the password)
        token = token or os.environ.get(token_env)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        delay, last = self.backoff_s, ""
        for attempt in range(self.retries + 1):
            try:
                r = httpx.post(self.url + path, json=body, headers=self.headers, timeout=self.timeout_s)
            except httpx.HTTPError as e:
                last = redact_text(f"{type(e).__name__}: {e}")
            else:
                if r.status_code == 200:
                    return r.json()
                if r.status_code < 500:  # our request is wrong: retrying will not help
                    raise JudgeError(f"verifier service {self.shown_url}{path} answered {r.status_code}: {r.text[:500]}")
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise JudgeError(f"verifier service {self.shown_url}{path} failed after {self.retries + 1} attempts: {last}")

    def verify(self, records: list[RolloutRecord]) -> list[Verdict]:
        data = self._post("/v1/verify", {"rollouts": [r.to_dict() for r in records]})
        return [Verdict.from_dict(v) for v in data["verdicts"]]

    def pairs_for_group(self, records: list[RolloutRecord], verdicts: list[Verdict]) -> tuple[list[PairRecord], str | None]:
        data = self._post("/v1/pairs", {"rollouts": [r.to_dict() for r in records],
                                        "verdicts": [v.to_dict() for v in verdicts]})
        return [PairRecord.from_dict(p) for p in data["pairs"]], data.get("skipped")
