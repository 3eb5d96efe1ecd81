"""How many threads torch may use: chosen once per ``veripo`` command from the cores this process can really run on.

torch's default is one intra-op thread per core of the machine. That oversubscribes the CPU when the process may run
on fewer cores (``taskset`` / a container's cgroup quota), when ``torchrun`` starts several processes on one node,
or when other busy processes share the cores: an OpenMP parallel region then waits at its barrier for a thread the
kernel has descheduled, and each op takes a time slice instead of microseconds.

The choice (:func:`choose_threads`, a pure function of its inputs, unit-tested with fake ones):

1. ``VERIPO_THREADS=N`` -> N intra-op threads, as given (per process); ``VERIPO_THREADS=auto`` -> step 3 even when
   ``OMP_NUM_THREADS`` is set (the launch scripts use it: torchrun sets ``OMP_NUM_THREADS=1`` on its own);
2. else ``OMP_NUM_THREADS=N`` -> N (what the user or the launcher asked for is respected);
3. else ``cores = min(len(sched_getaffinity), floor(cgroup cpu.max quota / period))``, minus this share of the cores
   other processes keep busy: ``floor(others * cores / machine_cpus)``, at most ``cores - 1``, where ``others`` is
   the number of runnable tasks right now (``/proc/loadavg``'s fourth field, median of 5 reads 20 ms apart) less
   this process and its ``LOCAL_WORLD_SIZE - 1`` siblings; then divided by ``LOCAL_WORLD_SIZE``, at least 1.
   The runnable count, not the load average: the 1-minute average still holds a stage that just ended (the
   previous ``veripo loop --stage`` of a pipeline) and misses processes that just started.

Inter-op threads: ``max(1, intra // 2)`` (eager PyTorch barely uses that pool; it only has to not oversubscribe).
:func:`apply_threads` sets both (and ``OMP_NUM_THREADS`` for child processes) and prints one line saying what was
chosen and why.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclasses.dataclass(frozen=True)
class ThreadChoice:
    intra: int
    inter: int
    reason: str  # one line: where the number came from

    def describe(self) -> str:
        return f"torch threads: intra-op {self.intra}, inter-op {self.inter} ({self.reason})"


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup quota allows (cgroup v2 ``cpu.max`` "QUOTA PERIOD", or v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``); None when unlimited or unreadable."""
    try:
        v2 = root / "cpu.max"
        if v2.exists():
            fields = v2.read_text().split()  # "max 100000" or "200000 100000"
            if not fields or fields[0] == "max":
                return None
            return float(fields[0]) / (float(fields[1]) if len(fields) > 1 else 100000.0)
        q, p = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if q.exists() and p.exists():
            quota = float(q.read_text())
            return None if quota <= 0 else quota / float(p.read_text())
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return None


def _positive_int(name: str, value: str) -> int:
    from veripo.errors import VeripoError

    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise VeripoError(f"${name}={value!r}: expected a positive number of threads (or 'auto' for VERIPO_THREADS)")
    return n


def choose_threads(env: dict[str, str], affinity: int, quota: float | None, others: int | None = None,
                   machine_cpus: int | None = None) -> ThreadChoice:
    """The thread counts for one process. ``affinity``: CPUs in ``sched_getaffinity``; ``quota``: CPUs the cgroup
    allows (None: unlimited); ``others``: runnable tasks of other processes now (None: unknown); ``machine_cpus``:
    CPUs of the machine (default ``affinity``); ``env``: reads VERIPO_THREADS, OMP_NUM_THREADS, LOCAL_WORLD_SIZE."""
    explicit = env.get("VERIPO_THREADS", "").strip()
    if explicit and explicit != "auto":
        n = _positive_int("VERIPO_THREADS", explicit)
        return ThreadChoice(n, max(1, n // 2), f"VERIPO_THREADS={n}")
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp and not explicit:
        n = _positive_int("OMP_NUM_THREADS", omp)
        return ThreadChoice(n, max(1, n // 2), f"OMP_NUM_THREADS={n}")
    cores = max(1, affinity)
    parts = [f"affinity {affinity}"]
    if quota is not None:
        cores = max(1, min(cores, math.floor(quota)))
        parts.append(f"cgroup quota {quota:g}")
    free = cores
    if others is not None:
        machine = max(1, machine_cpus or affinity)
        free = cores - max(0, min(cores - 1, math.floor(max(0, others) * cores / machine)))
        parts.append(f"{max(0, others)} other runnable on {machine} CPUs")
    local = _positive_int("LOCAL_WORLD_SIZE", env.get("LOCAL_WORLD_SIZE", "1") or "1")
    n = max(1, free // local)
    parts.append(f"{local} process{'es' if local > 1 else ''} on this node")
    return ThreadChoice(n, max(1, n // 2), f"auto: {free} of {cores} core{'s' if cores > 1 else ''} free; "
                        + ", ".join(parts))


def runnable_now(samples: int = 5, interval_s: float = 0.02, path: str = "/proc/loadavg") -> int | None:
    """Median number of runnable tasks on the machine over ``samples`` reads (None where there is no /proc)."""
    import statistics
    import time

    counts = []
    for i in range(samples):
        try:
            with open(path) as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]))
        except (OSError, IndexError, ValueError):
            return None
        if i + 1 < samples:
            time.sleep(interval_s)
    return int(statistics.median(counts))


def detect_choice(env: dict[str, str] | None = None) -> ThreadChoice:
    """:func:`choose_threads` with this machine's affinity, cgroup quota and runnable tasks."""
    env = dict(os.environ) if env is None else env
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        affinity = os.cpu_count() or 1
    running = runnable_now()
    local = env.get("LOCAL_WORLD_SIZE", "1")
    siblings = int(local) if local.isdigit() and int(local) > 0 else 1
    others = None if running is None else running - siblings  # this process and its siblings are not "others"
    return choose_threads(env, affinity, cgroup_cpu_limit(), others, os.cpu_count())


_APPLIED: ThreadChoice | None = None


def apply_threads(env: dict[str, str] | None = None, announce: bool = True) -> ThreadChoice:
    """Choose and apply the thread counts once per process (later calls return the first choice)."""
    global _APPLIED
    if _APPLIED is not None:
        return _APPLIED
    choice = detect_choice(env)
    os.environ["OMP_NUM_THREADS"] = str(choice.intra)  # child processes (video decoders, workers) follow
    os.environ.setdefault("MKL_NUM_THREADS", str(choice.intra))
    import torch

    torch.set_num_threads(choice.intra)
    try:
        torch.set_num_interop_threads(choice.inter)
    except RuntimeError:  # the inter-op pool already started (an earlier torch call in this process): keep it
        choice = dataclasses.replace(choice, inter=torch.get_num_interop_threads())
    _APPLIED = choice
    if announce and os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"veripo: {choice.describe()}", file=sys.stderr, flush=True)
    return choice
