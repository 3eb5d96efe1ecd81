"""scripts/bench_verifier_service.py on a tiny load: the real ``veripo serve-verifier`` process answers every batched
request with one verdict per rollout, the same verdicts as the in-process Verifier, none from the cache when the
bodies are distinct. Nothing here asserts on timing."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# loaded from its file, not via sys.path (scripts/deepspeed/ would shadow DeepSpeed; see tests/test_gpu_check.py)
_spec = importlib.util.spec_from_file_location("bench_verifier_service", ROOT / "scripts" / "bench_verifier_service.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_verifier_service"] = bench
_spec.loader.exec_module(bench)


def test_rollout_rows_are_distinct_realistic_records():
    from veripo.verifier.checks import content_hash
    from veripo.verifier.pipeline import parse_rollout

    rows = bench.rollout_rows(30, words=60) + bench.rollout_rows(30, words=60, start=30)
    recs = [parse_rollout(r) for r in rows]
    assert len({r.rollout_id for r in recs}) == 60
    assert len({content_hash(r.response, r.sample) for r in recs}) == 60
    assert all(len(r.token_ids) == len(r.logps) > 50 for r in recs)
    assert all(len(r.response.split()) >= 60 for r in recs)
    assert {r.finish_reason for r in recs} == {"stop", "length"}
    assert rows[:30] == bench.rollout_rows(30, words=60)  # a pure function of (n, words, seed, start)


@pytest.fixture(scope="module")
def service():
    with bench.Service(max_batch=8) as (host, port):
        yield host, port


def test_service_verdicts_equal_in_process_and_load_is_counted(service):
    host, port = service
    assert bench.check_verdicts(host, port, bench.rollout_rows(8, words=40, start=10_000)) == 8
    hits = bench.cache_hits(host, port)
    bodies = bench.request_bodies(1000, batch=8, words=40)
    assert len(json.loads(bodies[0])["rollouts"]) == 8
    r = bench.run_load(host, port, bodies, batch=8, clients=3, seconds=0.3, warmup_s=0.1)
    assert r["errors"] == 0 and r["clients"] == 3 and r["batch"] == 8
    assert 0 < r["requests"] <= r["requests_sent"] <= 1000
    assert r["rollouts_per_s"] == pytest.approx(r["requests"] * 8 / 0.3)
    assert 0 < r["p50_ms"] <= r["p99_ms"]
    assert bench.cache_hits(host, port) == hits  # every body distinct: every verdict was computed


def test_run_load_reports_refused_batches_as_errors(service):
    host, port = service
    r = bench.run_load(host, port, bench.request_bodies(3, batch=9, words=20), batch=9, clients=1, seconds=0.3,
                       warmup_s=0.0)
    assert r["requests"] == 0 and r["errors"] > 0 and "413" in r["error_sample"][0]


def test_server_split_times_every_part_and_both_response_paths_agree():
    split = bench.server_split(bench.request_bodies(2, batch=8, words=30), max_batch=8)
    assert set(split) >= {"json", "model", "parse", "verify", "response", "response_before", "batch_ms", "ratio"}
    assert all(split[k] > 0 for k in ("json", "parse", "verify", "response", "response_before"))
