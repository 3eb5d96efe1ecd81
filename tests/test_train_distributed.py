"""veripo.train.distributed: the none/ddp/deepspeed engines against plain clip_and_step.

Multi-process cases run in spawned processes (gloo on 127.0.0.1), so this pytest process never joins a process
group. Workers write their results to files; the test compares them with a single-process reference.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from veripo.train.distributed import (DistConfig, TrainEngine, all_gather_objects, all_reduce_max, all_reduce_mean,
                                      all_reduce_sum, free_port, load_deepspeed_config, shard)
from veripo.train.optim import OptimConfig, build_optimizer, build_scheduler, clip_and_step

OPTIM = OptimConfig(lr=0.05, grad_clip=0.5, warmup_steps=1, schedule="linear")
ROWS, IN, OUT = 8, 4, 3
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(ROWS, IN, generator=g), torch.randn(ROWS, OUT, generator=g)


def initial_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return nn.Linear(IN, OUT).state_dict()


def build(weights, backend="none", **dist_kwargs):
    model = nn.Linear(IN, OUT)
    model.load_state_dict(weights)
    opt = build_optimizer(model, OPTIM)
    sched = build_scheduler(opt, OPTIM, total_steps=4)
    engine = TrainEngine.create(model, opt, sched, DistConfig(backend=backend, **dist_kwargs),
                                grad_clip=OPTIM.grad_clip, micro_batch_size=2)
    return engine


def engine_step(engine, x, y, mbs: int = 2, denominator: float | None = None) -> float:
    """One optimiser step over (x, y) in micro-batches: loss = sum of squared errors / denominator."""
    denom = denominator if denominator is not None else float(y.numel())
    starts = list(range(0, len(x), mbs))
    for i, s in enumerate(starts):
        with engine.accumulating(last=i == len(starts) - 1):
            loss = ((engine.model(x[s:s + mbs]) - y[s:s + mbs]) ** 2).sum() / denom
            engine.backward(loss)
    return engine.step(OPTIM.grad_clip)


def reference_step(weights, x, y, steps: int = 1):
    """Plain single-process training: one backward over the whole batch, then clip_and_step."""
    model = nn.Linear(IN, OUT)
    model.load_state_dict(weights)
    opt = build_optimizer(model, OPTIM)
    sched = build_scheduler(opt, OPTIM, total_steps=4)
    norms, grads = [], []
    for _ in range(steps):
        (((model(x) - y) ** 2).sum() / y.numel()).backward()
        grads.append(model.weight.grad.clone())
        norms.append(clip_and_step(model, opt, sched, OPTIM.grad_clip))
    return model.state_dict(), norms, grads


# ----------------------------------------------------------------------------------------------- backend none
def test_none_is_exactly_clip_and_step():
    w = initial_weights()
    x, y = data()
    engine = build(w)
    assert (engine.rank, engine.world_size, engine.is_main) == (0, 1, True)
    assert engine.model is engine.unwrapped
    norms = [engine_step(engine, x, y, mbs=3) for _ in range(2)]  # 3 uneven micro-batches per step
    ref, ref_norms, _ = reference_step(w, x, y, steps=2)
    for k, v in ref.items():
        torch.testing.assert_close(engine.unwrapped.state_dict()[k], v, rtol=0, atol=1e-7)
    assert norms == pytest.approx(ref_norms, rel=1e-6)
    assert all(p.grad is None for p in engine.unwrapped.parameters())  # step zeroes the grads
    assert engine.scheduler.last_epoch == 2
    # helpers outside a process group are the identity
    assert all_reduce_sum(2.5) == 2.5 and all_reduce_max(3) == 3.0 and all_reduce_mean({"a": 1}) == {"a": 1.0}
    assert all_gather_objects({"x": 1}) == [{"x": 1}]
    engine.barrier()


def test_none_checkpoint_round_trip_restores_optimizer_and_schedule(tmp_path):
    w = initial_weights()
    x, y = data()
    engine = build(w)
    engine_step(engine, x, y)
    engine.save_checkpoint(tmp_path / "ckpt")
    saved = copy.deepcopy(engine.unwrapped.state_dict())
    engine_step(engine, x, y)
    after_two = copy.deepcopy(engine.unwrapped.state_dict())

    fresh = build(saved)
    fresh.load_checkpoint(tmp_path / "ckpt")
    assert fresh.scheduler.last_epoch == 1
    engine_step(fresh, x, y)  # same Adam moments and lr as the original's second step
    for k, v in after_two.items():
        torch.testing.assert_close(fresh.unwrapped.state_dict()[k], v, rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="engine_state.pt"):
        fresh.load_checkpoint(tmp_path / "missing")


def test_shard_round_robin_and_rejects_uneven_split():
    items = list(range(8))
    parts = [shard(items, r, 4) for r in range(4)]
    assert parts == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert sorted(i for p in parts for i in p) == items
    with pytest.raises(ValueError, match="do not split evenly over 3 ranks"):
        shard(items, 0, 3)
    assert shard(items, 2, 3, require_even=False) == [2, 5]
    with pytest.raises(ValueError, match="rank 3 is not in a world of size 2"):
        shard(items, 3, 2)


def test_unknown_backend_and_bad_deepspeed_configs_are_named(tmp_path):
    with pytest.raises(ValueError, match="dist.backend must be one of"):
        build(initial_weights(), backend="fsdp")
    with pytest.raises(ValueError, match="needs dist.deepspeed_config"):
        load_deepspeed_config(DistConfig(backend="deepspeed"))
    bad = tmp_path / "ds.json"
    bad.write_text('{"gradient_accumulation_steps": 4}')
    with pytest.raises(ValueError, match="gradient_accumulation_steps must be 1"):
        load_deepspeed_config(DistConfig(backend="deepspeed", deepspeed_config=str(bad)))
    bad.write_text('{"optimizer": {"type": "AdamW"}}')
    with pytest.raises(ValueError, match="remove 'optimizer'"):
        load_deepspeed_config(DistConfig(backend="deepspeed", deepspeed_config=str(bad)))
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_deepspeed_config(DistConfig(backend="deepspeed", deepspeed_config=str(bad)))


@pytest.mark.parametrize("name,stage", [("zero2.json", 2), ("zero3.json", 3)])
def test_shipped_deepspeed_configs_are_explicit(name, stage):
    cfg = DistConfig(backend="deepspeed", deepspeed_config=os.path.join(REPO, "scripts", "deepspeed", name),
                     deepspeed_overrides={"zero_optimization": {"overlap_comm": False}})
    ds = load_deepspeed_config(cfg, grad_clip=0.3, micro_batch_size=5)
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["zero_optimization"]["overlap_comm"] is False  # override merged, siblings kept
    assert ds["zero_optimization"]["contiguous_gradients"] is True
    assert ds["gradient_accumulation_steps"] == 1
    assert ds["gradient_clipping"] == 0.3 and ds["train_micro_batch_size_per_gpu"] == 5
    assert "auto" not in repr(ds)
    if not torch.cuda.is_available():
        assert ds["bf16"]["enabled"] is False


# ----------------------------------------------------------------------------------------------- ddp workers
def _ddp_worker(rank: int, world: int, port: int, weights, x, y, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # every rank but 0 starts from different weights: DDP must broadcast rank 0's
    start = weights if rank == 0 else {k: torch.randn_like(v) for k, v in weights.items()}
    build(start, backend="none")
    engine = build(start, backend="ddp")
    assert "deepspeed" not in sys.modules, "the none/ddp path imported deepspeed"
    xs, ys = shard(x, rank, world), shard(y, rank, world)
    xs, ys = torch.stack(xs), torch.stack(ys)
    tokens = all_reduce_sum(ys.numel())  # global count -> per-rank denominator tokens / world
    grads = {}
    starts = list(range(0, len(xs), 2))
    for i, s in enumerate(starts):
        with engine.accumulating(last=i == len(starts) - 1):
            loss = ((engine.model(xs[s:s + 2]) - ys[s:s + 2]) ** 2).sum() / (tokens / world)
            engine.backward(loss)
        grads[i] = engine.unwrapped.weight.grad.clone()  # before the last piece: local only (no_sync)
    norm = engine.step(OPTIM.grad_clip)
    metrics = all_reduce_mean({"rank": float(rank), **({"only_rank0": 5.0} if rank == 0 else {})})
    metrics["max"] = all_reduce_max(10.0 * rank + 1)
    metrics["gathered"] = all_gather_objects(["r", rank])
    engine.barrier()
    torch.save({"grads": grads, "norm": norm, "params": engine.unwrapped.state_dict(), "metrics": metrics,
                "world": (engine.rank, engine.world_size, engine.is_main), "tokens": tokens},
               os.path.join(out_dir, f"rank{rank}.pt"))
    engine.close()
    assert not torch.distributed.is_initialized()


SPAWN_TIMEOUT_S = 300  # a gloo group that lost a process waits forever: fail the test instead of the CI run


def _spawn(fn, world: int, *args) -> None:
    """Run ``fn`` in ``world`` processes; a worker's exception is re-raised, and a group still running after
    SPAWN_TIMEOUT_S is killed and the test failed (one full-suite run hung here once with one worker gone)."""
    ctx = mp.spawn(fn, args=(world, free_port(), *args), nprocs=world, join=False)
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            alive = [p.pid for p in ctx.processes if p.is_alive()]
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{fn.__name__}: {world} processes still running after {SPAWN_TIMEOUT_S} s (alive: {alive})")


def test_ddp_world_size_one_gives_the_same_parameters_as_none(tmp_path):
    w = initial_weights()
    x, y = data()
    _spawn(_ddp_worker, 1, w, x, y, str(tmp_path))
    got = torch.load(tmp_path / "rank0.pt")
    assert got["world"] == (0, 1, True)
    none = build(w)
    norm = engine_step(none, x, y)
    for k, v in none.unwrapped.state_dict().items():
        assert torch.equal(got["params"][k], v), k
    assert got["norm"] == pytest.approx(norm, rel=1e-6)


def test_ddp_two_processes_average_gradients(tmp_path):
    w = initial_weights()
    x, y = data()
    _spawn(_ddp_worker, 2, w, x, y, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    ref_params, ref_norms, ref_grads = reference_step(w, x, y)
    assert r0["tokens"] == r1["tokens"] == y.numel()
    # first piece ran under no_sync: each rank holds only its own (different) contribution
    assert not torch.allclose(r0["grads"][0], r1["grads"][0])
    # after the last piece both hold the average over ranks = the full-batch gradient
    torch.testing.assert_close(r0["grads"][1], ref_grads[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r1["grads"][1], ref_grads[0], rtol=1e-5, atol=1e-6)
    assert r0["norm"] == pytest.approx(ref_norms[0], rel=1e-5) and r1["norm"] == pytest.approx(ref_norms[0], rel=1e-5)
    for k, v in ref_params.items():
        assert torch.equal(r0["params"][k], r1["params"][k]), k  # ranks stay in lockstep
        torch.testing.assert_close(r0["params"][k], v, rtol=1e-5, atol=1e-6)
    assert r0["metrics"] == r1["metrics"] == {"only_rank0": 5.0, "rank": 0.5, "max": 11.0,
                                              "gathered": [["r", 0], ["r", 1]]}
    assert r0["world"] == (0, 2, True) and r1["world"] == (1, 2, False)


# ----------------------------------------------------------------------------------------------- deepspeed
def _deepspeed_worker(rank: int, world: int, port: int, weights, x, y, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    torch.set_num_threads(1)
    out = {}
    for stage in (2, 3):
        engine = build(weights, backend="deepspeed",
                       deepspeed_config=os.path.join(REPO, "scripts", "deepspeed", f"zero{stage}.json"))
        norms = [engine_step(engine, x, y, mbs=3)]  # 3 micro-batches, one optimiser step
        engine.save_checkpoint(os.path.join(out_dir, f"ckpt{stage}"))
        norms.append(engine_step(engine, x, y, mbs=3))
        after_two = {k: v.float().clone() for k, v in engine.full_state_dict().items()}
        engine.load_checkpoint(os.path.join(out_dir, f"ckpt{stage}"))
        engine_step(engine, x, y, mbs=3)
        replayed = {k: v.float().clone() for k, v in engine.full_state_dict().items()}
        try:  # several backward() calls without accumulating() would silently drop gradients: must raise
            for s in (0, 4):
                engine.backward(((engine.model(x[s:s + 4]) - y[s:s + 4]) ** 2).sum())
            loose = "no error"
        except RuntimeError as e:
            loose = str(e)
        out[stage] = {"norms": norms, "after_two": after_two, "replayed": replayed, "loose": loose}
    torch.save(out, os.path.join(out_dir, "deepspeed.pt"))
    engine.close()


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed (optional)")
def test_deepspeed_zero2_and_zero3_match_plain_training(tmp_path):
    w = initial_weights()
    x, y = data()
    _spawn(_deepspeed_worker, 1, w, x, y, str(tmp_path))
    got = torch.load(tmp_path / "deepspeed.pt")
    ref_params, ref_norms, _ = reference_step(w, x, y, steps=2)
    for stage in (2, 3):
        assert got[stage]["norms"] == pytest.approx(ref_norms, rel=1e-5), stage
        for k, v in ref_params.items():
            torch.testing.assert_close(got[stage]["after_two"][k], v, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(got[stage]["replayed"][k], v, rtol=1e-5, atol=1e-6)
        assert "accumulating(last=...)" in got[stage]["loose"]
