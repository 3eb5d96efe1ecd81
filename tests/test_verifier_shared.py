"""One ``veripo serve-verifier`` shared by several clients: the token comes from the environment only, each client
keeps at most ``service_concurrency`` requests in flight, and a service restarted in the middle of a run costs the
clients a pause (they retry with backoff), not their run: every verdict arrives and equals the in-process one."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, HTTPException

from veripo.errors import JudgeError
from veripo.verifier.client import VerifierClient
from veripo.verifier.config import VerifierConfig
from veripo.verifier.examples import example_rollouts
from veripo.verifier.pipeline import PARTIAL, run_verification
from veripo.verifier.serving import BackgroundServer, free_port

TOKEN = "tok-from-env"


def verdict_rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        r.pop("judge_latency_s")  # wall time, the only field that may differ
    return rows


class Serve:
    """``veripo serve-verifier`` in a subprocess on a fixed port (so it can be restarted where clients look)."""

    def __init__(self, port: int, log: Path):
        self.port, self.log, self.proc = port, log, None

    def start(self) -> None:
        env = {**os.environ, "VERIPO_VERIFIER_TOKEN": TOKEN, "VERIPO_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "veripo.cli", "serve-verifier", "--port", str(self.port)],
                                     env=env, stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"serve-verifier did not come up: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)  # abrupt: requests in flight see their connection reset
        self.proc.wait(timeout=30)


class InThread:
    """The same service app in a thread of this process (uvicorn): restarts in milliseconds, for the default test."""

    def __init__(self, port: int, log: Path):
        self.port, self.server = port, None

    def start(self) -> None:
        from veripo.verifier.service import create_app

        self.server = BackgroundServer(create_app(VerifierConfig(), token=TOKEN), port=self.port)
        self.server.start()

    def kill(self) -> None:
        self.server.stop()


@pytest.mark.parametrize("kind", ["thread", pytest.param("process", marks=pytest.mark.slow)])
def test_two_clients_survive_a_restart_and_get_the_in_process_verdicts(kind, tmp_path, monkeypatch, caplog):
    """``process``: the real ``veripo serve-verifier`` (token from its environment), killed with SIGKILL and started
    again (~10-60 s: two interpreter starts); ``thread``: the same app in this process, stopped and started again."""
    rollouts = [r.to_dict() for step in range(16) for r in example_rollouts(step)]
    paths = []
    for name in ("a", "b"):
        paths.append(tmp_path / f"{name}.jsonl")
        rows = rollouts if name == "a" else rollouts[::-1]
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    local = run_verification(paths[0], tmp_path / "local", VerifierConfig(), progress=False)

    server = (Serve if kind == "process" else InThread)(free_port(), tmp_path / "serve.log")
    server.start()
    monkeypatch.setenv("VERIPO_VERIFIER_TOKEN", TOKEN)  # the clients read it too; nothing on a command line
    cfg = VerifierConfig(batch_size=4, service_url=f"http://127.0.0.1:{server.port}", service_concurrency=2,
                         service_retries=12, service_backoff_s=0.2)
    results, errors = {}, []

    def client(name: str, path: Path) -> None:
        try:
            results[name] = run_verification(path, tmp_path / name, cfg, progress=False)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    caplog.set_level(logging.WARNING, logger="veripo.verifier.client")
    threads = [threading.Thread(target=client, args=(n, p)) for n, p in zip("ab", paths)]
    for t in threads:
        t.start()
    partial = tmp_path / "a" / PARTIAL
    deadline = time.monotonic() + 120
    while not (partial.exists() and len(partial.read_text().splitlines()) >= 8):
        assert time.monotonic() < deadline and not errors, errors
        time.sleep(0.01)
    server.kill()
    killed_at = len(partial.read_text().splitlines())
    assert all(t.is_alive() for t in threads), "a client finished before the restart: make the run longer"
    time.sleep(1.0)  # clients meet a closed port for a while
    server.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert killed_at < len(rollouts)
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert retries, "no client retried: the restart did not happen mid-run"
    for name in ("a", "b"):
        assert results[name]["rollouts"] == len(rollouts) and results[name]["mode"] == "service"
    assert verdict_rows(tmp_path / "a" / "verdicts.jsonl") == verdict_rows(tmp_path / "local" / "verdicts.jsonl")
    assert sorted(map(json.dumps, verdict_rows(tmp_path / "b" / "verdicts.jsonl"))) == \
        sorted(map(json.dumps, verdict_rows(tmp_path / "local" / "verdicts.jsonl")))  # b read them in reverse
    assert (tmp_path / "a" / "pairs.jsonl").read_text() == (tmp_path / "local" / "pairs.jsonl").read_text()
    for k in ("judged", "inconsistent", "repetitive", "pairs"):
        assert results["a"][k] == results["b"][k] == local[k]
    # the restarted service served the rest, with the token from its environment
    metrics = httpx.get(f"http://127.0.0.1:{server.port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert metrics.status_code == 200 and 'path="/v1/verify",status="200"' in metrics.text
    assert httpx.get(f"http://127.0.0.1:{server.port}/metrics").status_code == 401
    server.kill()


def fake_service(delay_s: float = 0.2) -> tuple[FastAPI, dict]:
    """A stand-in for the service that counts requests in flight and fails the first ones of ``/v1/fail``."""
    app, state, lock = FastAPI(), {"now": 0, "max": 0, "fail": 2, "calls": 0}, threading.Lock()

    @app.post("/v1/verify")
    def verify(body: dict) -> dict:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(delay_s)
        with lock:
            state["now"] -= 1
        return {"verdicts": [{"rollout_id": r["rollout_id"]} for r in body["rollouts"]]}

    @app.post("/v1/pairs")
    def flaky(body: dict) -> dict:
        state["calls"] += 1
        if state["fail"] > 0:
            state["fail"] -= 1
            raise HTTPException(503, "restarting")
        return {"pairs": [], "skipped": "fake"}

    return app, state


def test_each_client_keeps_at_most_its_concurrency_in_flight(monkeypatch):
    monkeypatch.setattr("veripo.verifier.client.Verdict.from_dict", staticmethod(lambda d: d["rollout_id"]))
    records = [r for step in range(2) for r in example_rollouts(step)][:16]
    app, state = fake_service()
    with BackgroundServer(app) as url:
        one = VerifierClient(url, concurrency=3)
        assert one.verify(records) == [r.rollout_id for r in records]  # order kept across the parallel requests
        assert state["max"] == 3
        state["max"] = 0
        a, b = VerifierClient(url, concurrency=2), VerifierClient(url, concurrency=2)
        threads = [threading.Thread(target=c.verify, args=(records,)) for c in (a, b, a)]  # a used by two threads
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 2 < state["max"] <= 4  # both clients ran at once, each within its bound of 2
        # 503 (a restart) is retried with backoff; the third attempt answers
        flaky = VerifierClient(url, retries=3, backoff_s=0.01)
        assert flaky.pairs_for_group([], []) == ([], "fake") and flaky.retried == 2 and state["calls"] == 3
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        VerifierClient(url, concurrency=0)


def test_a_request_the_service_rejects_is_not_retried():
    app = FastAPI()

    @app.post("/v1/verify")
    def verify(body: dict) -> dict:
        raise HTTPException(422, "rollouts[0]: bad")

    with BackgroundServer(app) as url:
        client = VerifierClient(url, retries=5, backoff_s=0.01)
        with pytest.raises(JudgeError, match="answered 422"):
            client.verify(example_rollouts()[:1])
        assert client.retried == 0


def test_the_token_is_never_taken_from_the_command_line(capsys, monkeypatch):
    from veripo.cli import main

    monkeypatch.delenv("VERIPO_VERIFIER_TOKEN", raising=False)
    assert main(["serve-verifier", "--token", "s3cret"]) == 2
    err = capsys.readouterr().err
    assert "--token is not accepted" in err and "$VERIPO_VERIFIER_TOKEN" in err
    assert main(["serve-verifier", "--host", "0.0.0.0"]) == 2
    assert "without a bearer token: export $VERIPO_VERIFIER_TOKEN, or pass --no-auth" in capsys.readouterr().err
