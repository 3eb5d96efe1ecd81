"""scripts/bench_judge_service.py on a tiny load: the real ``veripo serve-judge`` process (tiny kit) answers every
judge request of the verifier at each concurrency, without errors, and its busy seconds give a utilisation in
(0, 1]. Nothing here asserts on timing."""
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# loaded from its file, not via sys.path (scripts/deepspeed/ would shadow DeepSpeed; see tests/test_gpu_check.py)
_spec = importlib.util.spec_from_file_location("bench_judge_service", ROOT / "scripts" / "bench_judge_service.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_judge_service"] = bench
_spec.loader.exec_module(bench)


def test_every_judged_rollout_is_one_request_and_utilisation_is_a_fraction(tmp_path):
    out = tmp_path / "judge.json"
    assert bench.main(["--rollouts", "6", "--concurrency", "1", "3", "--max-tokens", "6", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["concurrency"] for r in results] == [1, 3]
    for r in results:
        assert r["judged"] > 0 and r["requests"] == r["judged"]  # no retries: one request per judged rollout
        assert r["server_errors"] == 0 and r["transport_errors"] == 0
        assert 0 < r["utilisation"] <= 1.0
        assert r["completion_tokens"] > 0
