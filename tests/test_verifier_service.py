"""The verifier service over real HTTP on 127.0.0.1: auth, limits with clear messages, metrics, cache,
and identical results in-process vs through the service."""
import json

import httpx
import pytest

from veripo.records import PairRecord
from veripo.verifier.config import VerifierConfig
from veripo.verifier.examples import example_rollouts, write_example_rollouts
from veripo.verifier.pipeline import run_verification
from veripo.verifier.service import create_app
from veripo.verifier.serving import BackgroundServer

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def service():
    app = create_app(VerifierConfig(), token=TOKEN, max_batch=8, max_body_bytes=64_000)
    with BackgroundServer(app) as url:
        yield url, app


def rows(n=3):
    return [r.to_dict() for r in example_rollouts()[:n]]


def test_auth(service):
    url, _ = service
    assert httpx.get(url + "/health").json()["status"] == "ok"  # liveness needs no token
    r = httpx.post(url + "/v1/verify", json={"rollouts": rows()})
    assert r.status_code == 401 and "bearer token" in r.json()["detail"]
    r = httpx.post(url + "/v1/verify", json={"rollouts": rows()}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert httpx.get(url + "/metrics").status_code == 401
    assert httpx.post(url + "/v1/verify", json={"rollouts": rows()}, headers=AUTH).status_code == 200


def test_malformed_and_oversized_requests(service):
    url, _ = service
    bad = rows()
    del bad[1]["response"]
    r = httpx.post(url + "/v1/verify", json={"rollouts": bad}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"] == "rollouts[1]: RolloutRecord is missing field(s): response"
    bad = rows()
    bad[0]["sample"]["problem_type"] = "essay"
    r = httpx.post(url + "/v1/verify", json={"rollouts": bad}, headers=AUTH)
    assert r.status_code == 422 and "rollouts[0]" in r.json()["detail"] and "essay" in r.json()["detail"]
    r = httpx.post(url + "/v1/verify", content=b"not json", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422
    r = httpx.post(url + "/v1/verify", json={"rollouts": rows(9)}, headers=AUTH)
    assert r.status_code == 413 and "batch of 9 rollouts exceeds the limit of 8" in r.json()["detail"]
    big = rows(1)
    big[0]["response"] = "x" * 70_000
    r = httpx.post(url + "/v1/verify", json={"rollouts": big}, headers=AUTH)
    assert r.status_code == 413 and "exceeds the limit of 64000 bytes" in r.json()["detail"]
    assert "/v1/verify" in httpx.get(url + "/openapi.json").json()["paths"]


def test_pairs_endpoint_and_metrics_and_cache(service):
    url, app = service
    group = [r.to_dict() for r in example_rollouts() if r.group_id == "0-color-1"]
    r = httpx.post(url + "/v1/pairs", json={"rollouts": group}, headers=AUTH)
    assert r.status_code == 200
    pairs = [PairRecord.from_dict(p) for p in r.json()["pairs"]]
    assert {p.kind for p in pairs} == {"quality", "reflective", "single"}
    hits = app.state.verifier.cache_hits
    httpx.post(url + "/v1/verify", json={"rollouts": group}, headers=AUTH)
    assert app.state.verifier.cache_hits == hits + len(group)  # same content: served from the cache
    text = httpx.get(url + "/metrics", headers=AUTH).text
    assert 'veripo_verifier_requests_total{path="/v1/pairs",status="200"} 1' in text
    assert 'veripo_verifier_pairs_total{kind="reflective"} 1' in text
    assert "veripo_verifier_judge_latency_seconds_count" in text
    line = next(l for l in text.splitlines() if l.startswith('veripo_verifier_verdicts_total{consistency="inconsistent"}'))
    assert int(line.split()[-1]) >= 1


def test_same_results_in_process_and_over_http(service, tmp_path, monkeypatch):
    url, _ = service
    path = write_example_rollouts(tmp_path / "rollouts.jsonl", malformed=True)
    local = run_verification(path, tmp_path / "local", VerifierConfig(batch_size=5), progress=False)
    monkeypatch.setenv("VERIPO_VERIFIER_TOKEN", TOKEN)
    remote = run_verification(path, tmp_path / "remote", VerifierConfig(batch_size=5, service_url=url), progress=False)
    assert remote["mode"] == "service" and local["mode"] == "in-process"
    assert (tmp_path / "local" / "pairs.jsonl").read_text() == (tmp_path / "remote" / "pairs.jsonl").read_text()

    def strip(p):
        out = []
        for line in p.read_text().splitlines():
            d = json.loads(line)
            d.pop("judge_latency_s")
            out.append(d)
        return out

    assert strip(tmp_path / "local" / "verdicts.jsonl") == strip(tmp_path / "remote" / "verdicts.jsonl")
    for k in ("rollouts", "malformed", "judged", "unjudged", "inconsistent", "repetitive", "pairs", "rejection_reasons"):
        assert local[k] == remote[k]
    monkeypatch.setenv("VERIPO_VERIFIER_TOKEN", "wrong")
    from veripo.errors import JudgeError
    with pytest.raises(JudgeError, match="401"):
        run_verification(path, tmp_path / "denied", VerifierConfig(service_url=url), progress=False)
