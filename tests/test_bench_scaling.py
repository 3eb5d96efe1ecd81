"""scripts/bench_scaling.py on its two smallest points (G = 2 and 4, 8 new tokens, 4-frame 56x56 clips, width 64):
the real GRPO and DPO trainers run, a larger G does more work, the tables and exponents come from the numbers measured,
and a spawned worker reports its own peak RSS. Nothing here asserts on timing."""
import argparse
import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# loaded from its file, and sys.path restored after (scripts/deepspeed/ would shadow DeepSpeed; see
# tests/test_gpu_check.py): the bench puts scripts/ on sys.path to import its sibling benches
_saved_path = list(sys.path)
_spec = importlib.util.spec_from_file_location("bench_scaling", ROOT / "scripts" / "bench_scaling.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_scaling"] = bench
_spec.loader.exec_module(bench)
sys.path[:] = _saved_path

SMALL = {**bench.BASE, "group": 2, "tokens": 8, "frames": 4, "width": 64}


def test_fit_exponent_is_the_log_log_slope():
    assert bench.fit_exponent([2, 4, 8], [3 * x ** 1.5 for x in [2, 4, 8]]) == pytest.approx(1.5)
    assert bench.fit_exponent([1, 2], [5.0, 5.0]) == pytest.approx(0.0)
    xs, ys = [2, 4, 16], [1.0, 3.0, 4.0]
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / 3, sum(ly) / 3
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)
    assert bench.fit_exponent(xs, ys) == pytest.approx(slope)


def test_points_vary_one_factor_at_a_time():
    pts = bench.points(bench.FACTORS)
    assert pts[0] == bench.BASE and len(pts) == len({bench.point_key(p) for p in pts})
    assert len(pts) == 1 + sum(len(v) - 1 for v in bench.FACTORS.values())  # each factor's list holds the base value
    for p in pts[1:]:
        assert sum(p[k] != bench.BASE[k] for k in p) == 1


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    work = tmp_path_factory.mktemp("scaling")
    args = argparse.Namespace(steps=2, threads=1, work=str(work))
    paths = bench.prepare_point(work, SMALL, {})
    results = {}
    for g in (2, 4):
        p = {**SMALL, "group": g}
        results[bench.point_key(p)] = {"point": p, **{s: bench.measure(s, args, p, paths, work / f"{s}-{g}")
                                                      for s in bench.STAGES}}
    return args, paths, results


def test_a_larger_group_does_more_work(measured):
    _, _, results = measured
    small, large = (results[bench.point_key({**SMALL, "group": g})] for g in (2, 4))
    assert (small["grpo"]["rollouts"], large["grpo"]["rollouts"]) == (8, 16)
    assert 1 <= small["grpo"]["mean_len"] <= 8 and 1 <= large["grpo"]["mean_len"] <= 8
    assert large["grpo"]["tokens_generated"] > small["grpo"]["tokens_generated"]
    assert (small["dpo"]["pairs"], large["dpo"]["pairs"]) == (4, 8)
    assert large["dpo"]["tokens_per_step"] > small["dpo"]["tokens_per_step"]
    for r in (small, large):
        assert len(r["grpo"]["step_s"]) == 2 and len(r["dpo"]["step_s"]) == 1  # warm-up + one timed step
        assert r["grpo"]["generate_s"] > 0 and r["grpo"]["update_s"] > 0


def test_rows_and_exponents_come_from_the_measured_numbers(measured):
    _, _, results = measured
    for r in results.values():
        for s in bench.STAGES:
            r[s]["peak_rss_mb"] = 100.0  # in-process: not each point's own (the spawn test checks that path)
    rows = bench.factor_rows(results, "group", (2, 4), base=SMALL)
    assert [r["value"] for r in rows] == [2, 4]
    assert rows[0]["grpo_ratio"] == 1.0 and rows[0]["dpo_ratio"] == 1.0
    big = results[bench.point_key({**SMALL, "group": 4})]
    assert rows[1]["grpo_s"] == big["grpo"]["s_per_step"]
    assert rows[1]["grpo_ratio"] == pytest.approx(rows[1]["grpo_s"] / rows[0]["grpo_s"])
    assert rows[0]["seq_tokens"] == rows[1]["seq_tokens"] > 8  # G adds sequences, not length: prompt + 8 tokens
    e = bench.exponents(rows)
    assert e["dpo_s"] == pytest.approx(math.log(rows[1]["dpo_s"] / rows[0]["dpo_s"]) / math.log(2))
    table = bench.markdown("group", rows).splitlines()
    assert len(table) == 2 + 2 + 1 and table[-1].startswith(f"| exponent | | {e['grpo_s']:.2f} |")


def test_a_spawned_worker_reports_its_own_peak_rss(measured):
    args, paths, _ = measured
    r = bench.spawn("dpo", args, SMALL, paths)
    assert r["pairs"] == 4 and r["s_per_step"] > 0
    assert 50 < r["peak_rss_mb"] < 10_000  # torch + the kit: a real process's figure, in MB
