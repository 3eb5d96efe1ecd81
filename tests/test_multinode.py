"""The GRPO and DPO stages as 2 "nodes" x 1 process on loopback: two ``torchrun --nnodes 2 --node-rank 0|1
--master-addr 127.0.0.1 --master-port P`` processes (gloo, CPU), started by the test, each in its own working directory
with a relative ``out_dir`` - as if each node had its own local disk - so that whatever a rank writes is seen apart.

What is compared, and why it is what is actually equal:

* DPO: no sampling; each rank takes ``batch[rank::2]`` of every step's pairs and DDP averages the two ranks' mean
  losses' gradients, which is the one-process full-batch gradient. The 2-node weights equal the single-process run's
  within 1e-6 (absolute, every tensor).
* GRPO: each rank samples its half of the step's prompts with its own random stream, seeded by (seed, step, rank)
  (veripo/grpo/trainer.py), so a single-process run at the same seed samples *different* rollouts - by design, and
  no test can ask those to match. What must match: (1) the rollouts depend on the ranks and the seed only, not on
  the topology - the 2-node run writes exactly the rollouts of the same 2 processes on one node (ids, responses,
  token ids; the slow test below); (2) given those rollouts, the update is the single-process one - one process that
  replays the 2-node run's rollouts.jsonl (``resume`` with no checkpoint replays every stored step instead of
  sampling) ends with the 2-node run's weights within 1e-6.
* Both run with ``optim.eps=1e-2``. With AdamW's default eps=1e-8 an early step moves each weight by ~lr*sign(g),
  so a gradient element at rounding level (the largest differences seen: the tied embedding / lm_head) moves by up to
  lr in a direction decided by rounding: ANY change in how the batch is cut moves such weights by ~0.7 lr - measured
  7e-4 at lr 1e-3 in one process, micro_batch_size 16 vs 2. With eps=1e-2 AdamW is ~SGD at these gradient sizes,
  rounding stays at rounding size, and 1e-6 compares what distribution must preserve: the gradient.
* Writes: node 1's directory ends with no file in it; node 0's holds the store, the checkpoints, the metrics (one
  row per step) and the final policy.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from veripo.config import load_config
from veripo.io_utils import read_jsonl
from veripo.train.distributed import free_port

from kit_fixtures import tiny_kit_dir  # noqa: F401
from test_dpo_trainer import write_pairs
from test_grpo_distributed import TORCHRUN, _weights
from train_fixtures import VIDEO, synth_task, task_kit, warm_policy  # noqa: F401


def run_nodes(args: list[str], root: Path, nnodes: int = 2, timeout: float = 600) -> list[Path]:
    """``veripo ARGS`` on ``nnodes`` "nodes" of one process each (torchrun static rendezvous on 127.0.0.1), node r in
    ``root/node{r}``; returns those directories once every node exited 0."""
    port, dirs, procs = free_port(), [], []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VERIPO_THREADS": "1"}
    for r in range(nnodes):
        d = root / f"node{r}"
        d.mkdir(parents=True)
        dirs.append(d)
        cmd = [str(TORCHRUN), "--nnodes", str(nnodes), "--node-rank", str(r), "--nproc-per-node", "1",
               "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "veripo.cli", *args]
        procs.append(subprocess.Popen(cmd, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for r, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"node {r} exited {p.returncode}:\n{out[-4000:]}"
    return dirs


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_dpo_two_nodes_equal_one_process_and_only_rank0_writes(task_kit, synth_task, tmp_path):
    from veripo.dpo.config import DPOConfig
    from veripo.dpo.trainer import DPOTrainer

    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=8)
    common = [f"model.path={task_kit}", "model.freeze_vision=false", f"pairs_file={pairs}", "batch_size=4",
              "heldout_fraction=0", "optim.lr=1e-3", "optim.eps=1e-2", "tensorboard=false", "save_every=1", *VIDEO]
    node0, node1 = run_nodes(["dpo", *common, "out_dir=run", "dist.backend=ddp"], tmp_path)
    DPOTrainer(load_config(DPOConfig, None, [*common, f"out_dir={tmp_path / 'single'}"])).train()
    assert max_diff(_weights(node0 / "run" / "final"), _weights(tmp_path / "single" / "final")) < 1e-6
    assert max_diff(_weights(node0 / "run" / "final"), _weights(task_kit)) > 1e-4  # it trained: a real comparison
    assert files_under(node1) == []  # rank 1 read the shared inputs and wrote nothing
    written = files_under(node0 / "run")
    assert "metrics.jsonl" in written and "final/done.json" in written
    assert any(f.startswith("checkpoints/") or "step-" in f for f in written), written  # save_every=1: 1 checkpoint
    assert [m["step"] for m in read_jsonl(node0 / "run" / "metrics.jsonl")] == [0, 1]


def grpo_args(warm_policy: Path, train_file: Path) -> list[str]:
    return [f"model.path={warm_policy}", "model.freeze_vision=false", f"data.train_file={train_file}",
            "run.steps=2", "run.save_every=1", "rollout.prompts_per_step=2", "rollout.group_size=4",
            "rollout.max_new_tokens=16", "rollout.temperature=1.0", "run.tensorboard=false", "optim.lr=1e-3",
            "optim.eps=1e-2", *VIDEO]


@pytest.mark.slow  # ~2 min on a loaded 2-core machine (plus the warm-start fixture); the DPO test is the fast one
def test_grpo_two_nodes_update_like_one_process_and_only_rank0_writes(warm_policy, synth_task, tmp_path):
    from veripo.grpo.config import GRPOConfig
    from veripo.grpo.trainer import GRPOTrainer

    common = grpo_args(warm_policy, synth_task / "train.jsonl")
    node0, node1 = run_nodes(["grpo", *common, "run.out_dir=run", "dist.backend=ddp"], tmp_path)
    run = node0 / "run"
    rollouts = read_jsonl(run / "rollouts.jsonl")
    assert len({r["rollout_id"] for r in rollouts}) == len(rollouts) == 2 * 2 * 4  # both nodes', each once
    for step in (0, 1):  # each step's two prompts: one sampled on each node
        assert len({r["group_id"] for r in rollouts if r["step"] == step}) == 2
    assert files_under(node1) == []
    written = files_under(run)
    assert {"rollouts.jsonl", "metrics.jsonl", "config.yaml", "final/done.json"} <= set(written)
    assert any("step-" in f for f in written), written  # the step-1 checkpoint, written by rank 0
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl")] == [0, 1]

    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(run / "rollouts.jsonl", single / "rollouts.jsonl")
    GRPOTrainer(load_config(GRPOConfig, None, [*common, f"run.out_dir={single}"])).train(resume=True)
    assert read_jsonl(single / "rollouts.jsonl") == rollouts  # replayed, nothing sampled or appended
    assert max_diff(_weights(run / "final"), _weights(single / "final")) < 1e-6
    assert max_diff(_weights(run / "final"), _weights(warm_policy)) > 1e-6  # the policy moved: a real comparison
    # the update had something to learn from: some group's rewards disagree
    assert any(m.get("grad_norm", 0.0) > 0 for m in read_jsonl(run / "metrics.jsonl"))


@pytest.mark.slow
def test_grpo_two_nodes_sample_what_two_processes_on_one_node_sample(warm_policy, synth_task, tmp_path):
    common = [*grpo_args(warm_policy, synth_task / "train.jsonl"), "run.save_every=0", "dist.backend=ddp"]
    (node0, _) = run_nodes(["grpo", *common, "run.out_dir=run"], tmp_path / "nodes")
    one = tmp_path / "one"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VERIPO_THREADS": "1"}
    proc = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "veripo.cli", "grpo", *common,
                           f"run.out_dir={one}"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    a, b = read_jsonl(node0 / "run" / "rollouts.jsonl"), read_jsonl(one / "rollouts.jsonl")
    keys = ("rollout_id", "group_id", "step", "response", "token_ids")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    assert max_diff(_weights(node0 / "run" / "final"), _weights(one / "final")) < 1e-6


# ------------------------------------------------------------------------------------------ launch scripts (bash only)
REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "scripts" / "launch_multi_gpu.sh"


def launch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(LAUNCH), "--dry-run", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_launch_script_prints_the_command_it_runs(tmp_path):
    one = launch("grpo", "c.yaml", "optim.lr=1e-5")
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == ("+ torchrun --standalone --nproc-per-node 8 --no-python veripo grpo -c c.yaml "
                                  "dist.backend=ddp optim.lr=1e-5")
    node1 = launch("--nnodes", "2", "--node-rank", "1", "--master-addr", "10.0.0.1", "--master-port", "29511",
                   "--nproc-per-node", "4", "loop", "c.yaml", "--stage", "grpo", "--iteration", "1")
    assert node1.stdout.strip() == (
        "+ torchrun --nnodes 2 --node-rank 1 --master-addr 10.0.0.1 --master-port 29511 --nproc-per-node 4 "
        "--no-python veripo loop -c c.yaml grpo.dist.backend=ddp dpo.dist.backend=ddp --stage grpo --iteration 1")
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("node0 slots=8\nnode1 slots=8\n")
    ds = launch("--backend", "deepspeed", "--zero", "3", "--hostfile", str(hosts), "--master-addr", "node0",
                "dpo", "c.yaml")
    assert ds.stdout.strip() == (
        f"+ deepspeed --hostfile {hosts} --master_addr node0 --master_port 29500 --no_python --no_local_rank veripo "
        f"dpo -c c.yaml dist.backend=deepspeed dist.deepspeed_config={REPO}/scripts/deepspeed/zero3.json")
    env = launch("dpo", "c.yaml", env={"NGPUS": "2", "NNODES": "2", "NODE_RANK": "0", "MASTER_ADDR": "h"})
    assert "--nnodes 2 --node-rank 0 --master-addr h --master-port 29500 --nproc-per-node 2" in env.stdout
    for args, message in ((["--nnodes", "2", "grpo", "c.yaml"], "needs --master-addr"),
                          (["--nnodes", "2", "--node-rank", "2", "--master-addr", "h", "grpo", "c.yaml"],
                           "--node-rank 2 is not in 0..1"),
                          (["--hostfile", str(hosts), "grpo", "c.yaml"], "--hostfile is for the deepspeed launcher"),
                          (["--backend", "deepspeed", "--hostfile", "nope", "dpo", "c.yaml"], "hostfile not found"),
                          (["--frobnicate", "grpo", "c.yaml"], "unknown flag --frobnicate"),
                          (["eval", "c.yaml"], "wired for the grpo, dpo and sft stages")):
        bad = launch(*args)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)


def test_slurm_iteration_runs_each_stage_as_a_step_in_order(tmp_path):
    """The sbatch script with DRY_RUN=1 under a fake ``srun`` (one task per node: SLURM_NODEID 0 and 1) and
    ``scontrol``: GRPO on both nodes with their node ranks, then verify once (through the shared service), then DPO on
    both nodes, each after waiting for the previous stage's done.json."""
    (tmp_path / "loop.yaml").write_text("iterations: 2\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho gpu-a; echo gpu-b\n")
    (bin_dir / "srun").write_text('#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\n'
                                  'for n in 0 1; do SLURM_NODEID=$n "$@" || exit 1; done\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}", "DRY_RUN": "1",
           "ITERATION": "2", "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu-[a-b]", "SLURM_JOB_ID": "1234",
           "NGPUS": "4", "VERIFIER_URL": "http://verifier:8100", "SLURM_SUBMIT_DIR": str(REPO)}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "slurm" / "loop_iteration.sbatch"), "loop.yaml",
                           "run_dir=/shared/exp"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("+")]
    torchrun = ("+ torchrun --nnodes 2 --node-rank {r} --master-addr gpu-a --master-port 21234 --nproc-per-node 4 "
                "--no-python veripo loop -c loop.yaml grpo.dist.backend=ddp dpo.dist.backend=ddp run_dir=/shared/exp "
                "verify.service_url=http://verifier:8100 --stage {s} --iteration 2")
    assert lines == [
        torchrun.format(r=0, s="grpo"), torchrun.format(r=1, s="grpo"),
        "+ wait_for /shared/exp/iter-2/grpo/final/done.json",
        "+ srun --nodes=1 --ntasks=1 veripo loop -c loop.yaml --stage verify run_dir=/shared/exp "
        "verify.service_url=http://verifier:8100 --iteration 2",
        "+ wait_for /shared/exp/iter-2/verify/done.json",
        torchrun.format(r=0, s="dpo"), torchrun.format(r=1, s="dpo"),
        "+ wait_for /shared/exp/iter-2/dpo/final/done.json"]


def test_loop_stage_under_a_launcher_writes_from_rank_0_only(tmp_path, monkeypatch):
    """Every rank of ``torchrun ... veripo loop --stage dpo`` runs the stage function; with no pairs the GRPO policy
    is copied on as the DPO result - by rank 0 alone (two ranks copying into one shared folder would race)."""
    from veripo.loop.config import LoopConfig
    from veripo.loop.stages import iter_dir, run_dpo

    cfg = load_config(LoopConfig, None, [f"run_dir={tmp_path / 'run'}"])
    (iter_dir(cfg, 1) / "grpo" / "final").mkdir(parents=True)
    (iter_dir(cfg, 1) / "grpo" / "final" / "model.safetensors").write_text("weights")
    monkeypatch.setenv("RANK", "1")
    assert run_dpo(cfg, 1)["skipped"] == "no pairs"
    assert not (iter_dir(cfg, 1) / "dpo").exists()
    monkeypatch.setenv("RANK", "0")
    assert run_dpo(cfg, 1)["skipped"] == "no pairs"
    assert (iter_dir(cfg, 1) / "dpo" / "final" / "model.safetensors").read_text() == "weights"
    assert (iter_dir(cfg, 1) / "dpo" / "final" / "done.json").exists()
