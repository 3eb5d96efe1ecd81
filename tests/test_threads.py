"""veripo.train.threads: the thread counts chosen from fake affinity / cgroup / runnable-task / environment inputs, the cgroup
files parsed as v1 and v2 write them, and the one line every ``veripo`` command prints."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from veripo.errors import VeripoError
from veripo.train.threads import cgroup_cpu_limit, choose_threads


def test_auto_takes_the_smallest_of_affinity_quota_and_free_cores():
    assert choose_threads({}, affinity=8, quota=None).intra == 8
    assert choose_threads({}, affinity=8, quota=2.5).intra == 2  # a 2.5-CPU container: 2 threads
    assert choose_threads({}, affinity=2, quota=16.0).intra == 2  # taskset to 2 cores
    assert choose_threads({}, affinity=2, quota=0.5).intra == 1  # never below one
    # other runnable tasks keep their share of the cores busy, but one core is always left
    assert choose_threads({}, affinity=2, quota=None, others=0).intra == 2
    assert choose_threads({}, affinity=2, quota=None, others=1).intra == 1
    assert choose_threads({}, affinity=2, quota=None, others=5).intra == 1
    assert choose_threads({}, affinity=16, quota=None, others=5).intra == 11
    # a 4-CPU container on a busy 64-CPU host: only its share of the host's busy tasks counts
    assert choose_threads({}, affinity=64, quota=4.0, others=32, machine_cpus=64).intra == 2
    choice = choose_threads({}, affinity=8, quota=4.0, others=1, machine_cpus=8)
    assert (choice.intra, choice.inter) == (4, 2)
    assert choice.reason == ("auto: 4 of 4 cores free; affinity 8, cgroup quota 4, 1 other runnable on 8 CPUs, "
                             "1 process on this node")


def test_torchrun_processes_share_the_node_cores():
    env = {"LOCAL_WORLD_SIZE": "4"}
    assert choose_threads(env, affinity=32, quota=None, others=0).intra == 8
    assert choose_threads(env, affinity=32, quota=None, others=0).inter == 4
    assert choose_threads(env, affinity=2, quota=None, others=0).intra == 1  # more processes than cores: one each
    assert "4 processes on this node" in choose_threads(env, 32, None, 0).reason


def test_the_runnable_count_is_read_from_proc_loadavg(tmp_path):
    from veripo.train.threads import runnable_now

    f = tmp_path / "loadavg"
    f.write_text("5.02 4.10 2.00 3/512 12345\n")  # the 1-minute average says 5; 3 tasks are runnable now
    assert runnable_now(samples=3, interval_s=0, path=str(f)) == 3
    f.write_text("garbage")
    assert runnable_now(samples=1, path=str(f)) is None
    assert runnable_now(samples=1, path=str(tmp_path / "absent")) is None


def test_explicit_settings_win_in_order():
    assert choose_threads({"OMP_NUM_THREADS": "3"}, affinity=2, quota=1.0, others=9).intra == 3  # respected as is
    c = choose_threads({"VERIPO_THREADS": "5", "OMP_NUM_THREADS": "1"}, affinity=2, quota=None)
    assert (c.intra, c.inter, c.reason) == (5, 2, "VERIPO_THREADS=5")
    # VERIPO_THREADS=auto ignores an OMP_NUM_THREADS a launcher set (torchrun sets 1 on its own)
    c = choose_threads({"VERIPO_THREADS": "auto", "OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}, 16, None, 0)
    assert c.intra == 8 and c.reason.startswith("auto:")
    for env in ({"VERIPO_THREADS": "0"}, {"VERIPO_THREADS": "many"}, {"OMP_NUM_THREADS": "-2"}):
        with pytest.raises(VeripoError, match="expected a positive number of threads"):
            choose_threads(env, 2, None)


def test_cgroup_files_v2_and_v1(tmp_path):
    assert cgroup_cpu_limit(tmp_path) is None  # nothing there: unlimited
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert cgroup_cpu_limit(tmp_path) is None  # unreadable: treated as unlimited, never an error
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert cgroup_cpu_limit(v1) == 3.0


def test_a_command_applies_the_choice_once_and_leaves_stderr_to_errors():
    env = {**os.environ, "VERIPO_THREADS": "1"}
    env.pop("OMP_NUM_THREADS", None)
    code = ("import os, torch; from veripo.cli import main; from veripo.train.threads import apply_threads; "
            "rc = main(['verify', '--show-config']); b = apply_threads({'VERIPO_THREADS': '7'}); "
            "print(rc, torch.get_num_threads(), torch.get_num_interop_threads(), b.intra, os.environ['OMP_NUM_THREADS'])")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-5:] == ["0", "1", "1", "1", "1"]  # a second call keeps the first choice
    assert "torch threads" not in proc.stderr  # a training stage logs the choice when it starts (stage.py)


def test_a_bad_setting_is_a_one_line_error(monkeypatch, capsys):
    from veripo import cli
    from veripo.train import threads

    monkeypatch.setattr(threads, "_APPLIED", None)
    monkeypatch.setenv("VERIPO_THREADS", "lots")
    assert cli.main(["verify", "--show-config"]) == 2
    err = capsys.readouterr().err
    assert "veripo verify: error: $VERIPO_THREADS='lots': expected a positive number of threads" in err
    assert threads._APPLIED is None
