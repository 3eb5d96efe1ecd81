"""Fault injection shared by the kill/resume tests: SIGKILL a real ``veripo`` process once a file shows it is
mid-run, crash an in-process run at the n-th call of a method, and read a policy's weights for comparison."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

ENV = {**os.environ, "TQDM_DISABLE": "1"}


def veripo_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "veripo.cli", *args]


def lines_in(path: Path) -> int:
    """Complete lines in ``path`` (0 when it does not exist yet)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def sigkill_when(cmd: list[str], ready: Callable[[], bool], timeout: float = 600) -> None:
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` holds; fails if the run ends before that."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    alive = proc.poll() is None
    proc.kill()  # SIGKILL
    _, err = proc.communicate()
    assert alive, f"the run ended (rc {proc.returncode}) before it could be killed:\n{err.decode()[-2000:]}"
    assert proc.returncode == -signal.SIGKILL


def run_ok(cmd: list[str]) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def crash_at(obj, method: str, n: int, monkeypatch, run: Callable[[], object]) -> None:
    """Run ``run()`` until the ``n``-th call of ``obj.<method>``, which dies (as a kill would, mid-run)."""
    real, calls = getattr(obj, method), []

    def dies(*a, **k):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(obj, method, dies)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(obj, method, real)


def weights(path) -> dict[str, torch.Tensor]:
    from veripo.models import load_policy

    model, _ = load_policy(path)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a_path, b_path, atol: float = 1e-6) -> None:
    a, b = weights(a_path), weights(b_path)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=atol, rtol=0, msg=k)


def tear_last_line(path: Path, keep_newline: bool = False) -> None:
    """Cut the last line in half (a kill inside its write); ``keep_newline``: keep it whole but drop its newline."""
    data = path.read_bytes()
    head, _, last = data.rstrip(b"\n").rpartition(b"\n")
    head = head + b"\n" if head else b""
    path.write_bytes(head + (last if keep_newline else last[: len(last) // 2]))
