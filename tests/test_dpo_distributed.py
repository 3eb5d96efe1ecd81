"""The DPO stage on the distributed layer: DDP on CPU (gloo) trains like one process, and torchrun works."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from veripo.dpo.trainer import DPOTrainer
from veripo.io_utils import read_jsonl
from veripo.models import load_policy

from kit_fixtures import tiny_kit_dir  # noqa: F401
from test_dpo_trainer import dpo_cfg, write_pairs
from train_fixtures import VIDEO, synth_task, task_kit  # noqa: F401


def _weights(path):
    model, _ = load_policy(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_ddp_with_one_process_matches_plain_training(task_kit, synth_task, tmp_path, monkeypatch):
    from veripo.train.distributed import free_port

    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=8)
    common = ["batch_size=4", "heldout_fraction=0", "optim.lr=1e-3"]
    DPOTrainer(dpo_cfg(task_kit, pairs, tmp_path / "plain", *common)).train()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    DPOTrainer(dpo_cfg(task_kit, pairs, tmp_path / "ddp", *common, "dist.backend=ddp")).train()
    a, b = _weights(tmp_path / "plain" / "final"), _weights(tmp_path / "ddp" / "final")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_torchrun_two_processes(task_kit, synth_task, tmp_path):
    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=8)
    with open(pairs, "a") as f:
        f.write("{not json\n")  # one bad line: reported once (by rank 0), the run goes on
    torchrun = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "veripo.cli", "dpo",
           f"model.path={task_kit}", "model.freeze_vision=false", f"pairs_file={pairs}", f"out_dir={out}",
           "batch_size=4", "heldout_fraction=0", "tensorboard=false", "dist.backend=ddp", *VIDEO]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1]  # rank 0 alone writes, once per step
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in metrics)
    assert (out / "final" / "done.json").exists()
    assert proc.stdout.count("bad pair skipped:") == 1 and "pairs.jsonl:9" in proc.stdout
    assert proc.stdout.count('"final_policy"') == 1  # the summary, printed once
