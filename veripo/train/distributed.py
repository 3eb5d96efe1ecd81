"""Optional multi-process training: one small engine the trainers call instead of ``backward``/``clip_and_step``.

Backends (``dist.backend``):

* ``none``      - one process, exactly ``veripo.train.optim.clip_and_step`` (the CPU default; nothing else is imported).
* ``ddp``       - ``torch.nn.parallel.DistributedDataParallel``: every rank holds the whole model, gradients are
                  averaged over ranks (``g = (1/W) sum_r g_r``) once per optimiser step.
* ``deepspeed`` - ``deepspeed.initialize`` with a ZeRO-2/3 JSON (``scripts/deepspeed/zero{2,3}.json``): optimiser
                  state (ZeRO-2) and also parameters (ZeRO-3) are partitioned over ranks. DeepSpeed is imported only
                  here, only for this backend (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training
                  Trillion Parameter Models").

Gradient accumulation stays in the trainer. A step's batch is cut into ``optim.micro_batch_size`` pieces; the trainer
scales each piece's loss itself (token sums over the whole batch, ``len(part) / len(batch)`` ...), calls
``engine.backward`` per piece inside ``engine.accumulating(last=...)`` and ``engine.step`` once::

    for i, part in enumerate(parts):
        with engine.accumulating(last=i == len(parts) - 1):
            loss = loss_of(engine.model, part)       # forward through engine.model (the wrapped module)
            engine.backward(loss)
    grad_norm = engine.step(cfg.optim.grad_clip)     # clip + optimiser + scheduler + zero grads

``accumulating`` is ``no_sync()`` on non-final pieces for DDP (one all-reduce per step instead of one per piece) and
``set_gradient_accumulation_boundary(last)`` for DeepSpeed. The DeepSpeed JSONs pin ``gradient_accumulation_steps``
to 1 so that ``deepspeed``'s ``backward`` does not divide the (already scaled) loss a second time; the boundary is
set by hand on every piece, so DeepSpeed reduces/partitions gradients and steps exactly once per trainer step no
matter how many pieces the trainer uses (DeepSpeed's own counter would need the piece count in the JSON, which
varies step to step in GRPO after filtering).

Contract for ``ddp`` and ``deepspeed`` (collectives must line up): every rank runs the same number of micro-batches
(forward + backward; ZeRO-3 all-gathers parameters inside every forward) and calls ``step`` on every optimiser
step, even when its part of the batch carries no learning signal (use a zero-weighted loss then). ``shard`` splits
a step's prompts evenly for that reason. DDP and DeepSpeed average gradients over ranks, so a loss normalised by a
global count (e.g. the batch's completion tokens) should use ``all_reduce_sum(local_count) / world_size`` as its
per-rank denominator to match the single-process loss exactly.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist

from veripo.config import doc, require, require_file
from veripo.train.nonfinite import StepGuard
from veripo.train.optim import clip_and_step

log = logging.getLogger(__name__)
T = TypeVar("T")
BACKENDS = ("none", "ddp", "deepspeed")


@dataclasses.dataclass
class DistConfig:
    backend: str = doc("none (one process) | ddp (torch DistributedDataParallel) | deepspeed (ZeRO; pip install "
                       "'veripo[deepspeed]'). Launch ddp/deepspeed with torchrun or the deepspeed launcher "
                       "(scripts/launch_multi_gpu.sh).", "none")
    deepspeed_config: str = doc("DeepSpeed JSON for backend=deepspeed (scripts/deepspeed/zero2.json or zero3.json).", "")
    deepspeed_overrides: dict[str, Any] = doc("Keys merged over the DeepSpeed JSON (e.g. {zero_optimization: {stage: 3}}).",
                                              default_factory=dict)
    find_unused_parameters: bool = doc("DDP: allow trainable parameters that a forward does not use (slower).", False)
    timeout_minutes: int = doc("Collective timeout; raise it when rank 0 does long work (evaluation) alone.", 60)

    def check(self, prefix: str = "") -> None:
        require(self.backend in BACKENDS, f"{prefix}backend", self.backend, f"must be one of {' | '.join(BACKENDS)}")
        require(self.backend != "deepspeed" or bool(self.deepspeed_config), f"{prefix}deepspeed_config",
                self.deepspeed_config, "backend=deepspeed needs a DeepSpeed JSON (scripts/deepspeed/zero2.json)")
        require(self.timeout_minutes >= 1, f"{prefix}timeout_minutes", self.timeout_minutes, "must be >= 1")

    def check_inputs(self, prefix: str = "") -> None:
        if self.backend == "deepspeed":
            require_file(self.deepspeed_config, f"{prefix}deepspeed_config", "the DeepSpeed JSON")


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# ----------------------------------------------------------------------------------------------- process group
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (set by torchrun/deepspeed)") from None


def init_distributed(timeout_minutes: int = 60) -> DistInfo:
    """Join the process group torchrun / the deepspeed launcher describe (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``); nccl on CUDA, gloo otherwise. Without those variables this is one process
    (rank 0 of 1) on a free 127.0.0.1 port. Idempotent. Call it before loading the model so that each rank's
    ``cuda:LOCAL_RANK`` is the current device."""
    rank, world, local = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if not dist.is_initialized():
        if world > 1 and not os.environ.get("MASTER_ADDR"):
            raise ValueError(f"WORLD_SIZE={world} but MASTER_ADDR is not set: launch with torchrun or deepspeed")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
        for name, value in (("RANK", rank), ("WORLD_SIZE", world), ("LOCAL_RANK", local)):
            os.environ.setdefault(name, str(value))  # DeepSpeed reads these even in one process
        kwargs: dict[str, Any] = {}
        if cuda:
            kwargs["device_id"] = device  # lets nccl bind the communicator eagerly
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, device)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(items: Sequence[T], rank: int, world_size: int, require_even: bool = True) -> list[T]:
    """Rank ``rank``'s share of a step's items: ``items[rank::world_size]`` (round-robin, deterministic).

    ``require_even`` (default) rejects a count that does not divide by the world size: ranks with fewer items would
    run fewer micro-batches and the collectives would hang."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of size {world_size}")
    if require_even and len(items) % world_size:
        raise ValueError(f"{len(items)} items do not split evenly over {world_size} ranks; "
                         "use a per-step prompt count that is a multiple of the number of GPUs")
    return list(items[rank::world_size])


def all_reduce_sum(value: float) -> float:
    """Sum of a number over ranks (the value itself in one process)."""
    _, world = _world()
    if world == 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t.item())


def all_reduce_max(value: float) -> float:
    """Largest value over ranks, e.g. the micro-batch count every rank must run (the value itself in one process)."""
    _, world = _world()
    if world == 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_gather_objects(obj: T) -> list[T]:
    """Every rank's (picklable) object in rank order, e.g. rollout records rank 0 appends to the store."""
    _, world = _world()
    if world == 1:
        return [obj]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_mean(metrics: dict[str, float]) -> dict[str, float]:
    """Per-key mean over the ranks that report the key (ranks may log different keys, e.g. a skipped update)."""
    _, world = _world()
    if world == 1:
        return {k: float(v) for k, v in metrics.items()}
    gathered = all_gather_objects({k: float(v) for k, v in metrics.items()})
    keys = sorted({k for m in gathered for k in m})
    return {k: sum(m[k] for m in gathered if k in m) / sum(1 for m in gathered if k in m) for k in keys}


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------- engine
def load_deepspeed_config(cfg: DistConfig, grad_clip: float | None = None,
                          micro_batch_size: int | None = None) -> dict[str, Any]:
    """The DeepSpeed JSON with ``deepspeed_overrides`` merged in; ``grad_clip``/``micro_batch_size`` (when given)
    replace ``gradient_clipping``/``train_micro_batch_size_per_gpu``; bf16/fp16 are switched off without CUDA."""
    from veripo.config import merge

    if not cfg.deepspeed_config:
        raise ValueError("dist.backend=deepspeed needs dist.deepspeed_config (e.g. scripts/deepspeed/zero2.json)")
    path = Path(cfg.deepspeed_config)
    if not path.exists():
        raise FileNotFoundError(f"DeepSpeed config not found: {path}")
    try:
        ds = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    ds = merge(ds, cfg.deepspeed_overrides)
    for key in ("optimizer", "scheduler"):
        if key in ds:
            raise ValueError(f"{path}: remove '{key}': the trainer builds the optimiser and schedule (optim.* keys)")
    if int(ds.get("gradient_accumulation_steps", 1)) != 1:
        raise ValueError(f"{path}: gradient_accumulation_steps must be 1: the trainer accumulates micro-batches "
                         "itself (optim.micro_batch_size) and marks the last one")
    ds["gradient_accumulation_steps"] = 1
    if grad_clip is not None:
        ds["gradient_clipping"] = float(grad_clip)
    if micro_batch_size is not None:
        ds["train_micro_batch_size_per_gpu"] = int(micro_batch_size)
    if not torch.cuda.is_available():
        for key in ("bf16", "fp16"):
            if ds.get(key, {}).get("enabled"):
                log.warning("no CUDA: DeepSpeed %s switched off (fp32 on CPU)", key)
                ds[key] = {**ds[key], "enabled": False}
    _, world = _world()
    ds["train_batch_size"] = int(ds.get("train_micro_batch_size_per_gpu", 1)) * world
    return ds


def _ds_managed(engine) -> bool:
    """DeepSpeed >= 0.19 can leave the accumulation boundary to ``step()`` (``managed_gradient_accumulation: false``);
    otherwise (the default, and older versions) the boundary is set by hand on each micro-batch."""
    managed = getattr(engine, "managed_gradient_accumulation", None)
    return True if managed is None else bool(managed())


class TrainEngine:
    """Backward, clip + step, checkpoints and rank facts behind one interface for all backends.

    ``model``: the module to call forward on (DDP/DeepSpeed wrapper); ``unwrapped``: the plain model
    (``save_pretrained``, generation, reference passes)."""

    def __init__(self, backend: str, model, unwrapped, optimizer, scheduler, rank: int = 0, world_size: int = 1):
        self.backend = backend
        self.model = model
        self.unwrapped = unwrapped
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.rank, self.world_size = rank, world_size
        self._last: bool | None = None  # inside accumulating(): is this the final micro-batch?
        self._loose_backwards = 0  # backward() calls outside accumulating() since the last step()
        self._manual_boundary = backend == "deepspeed" and _ds_managed(model)
        self._warned_clip = False
        self.ds_config: dict[str, Any] = {}  # the resolved DeepSpeed config (backend deepspeed)
        self.guard = StepGuard()  # non-finite loss / gradient norm: skip the update (veripo/train/nonfinite.py)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, model, optimizer, scheduler, cfg: DistConfig | None = None, *, grad_clip: float | None = None,
               micro_batch_size: int | None = None) -> "TrainEngine":
        """Wrap an already built model/optimizer/scheduler for ``cfg.backend``.

        ``grad_clip`` / ``micro_batch_size`` fill DeepSpeed's ``gradient_clipping`` / ``train_micro_batch_size_per_gpu``
        (DeepSpeed clips inside its optimiser, so the value must be known up front)."""
        cfg = cfg or DistConfig()
        if cfg.backend not in BACKENDS:
            raise ValueError(f"dist.backend must be one of {list(BACKENDS)}, got {cfg.backend!r}")
        if cfg.backend == "none":
            rank, world = _world()
            return cls("none", model, model, optimizer, scheduler, rank, world)
        info = init_distributed(cfg.timeout_minutes)
        if cfg.backend == "ddp":
            return cls._create_ddp(model, optimizer, scheduler, cfg, info)
        return cls._create_deepspeed(model, optimizer, scheduler, cfg, info, grad_clip, micro_batch_size)

    @classmethod
    def _create_ddp(cls, model, optimizer, scheduler, cfg: DistConfig, info: DistInfo) -> "TrainEngine":
        from torch.nn.parallel import DistributedDataParallel

        if info.device.type == "cuda" and next(model.parameters()).device != info.device:
            model.to(info.device)  # in place: the optimiser keeps pointing at the same Parameters
        ids = [info.device.index] if info.device.type == "cuda" else None
        # The constructor broadcasts rank 0's parameters and buffers, so every rank starts identical.
        wrapped = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=cfg.find_unused_parameters)
        return cls("ddp", wrapped, model, optimizer, scheduler, info.rank, info.world_size)

    @classmethod
    def _create_deepspeed(cls, model, optimizer, scheduler, cfg: DistConfig, info: DistInfo,
                          grad_clip: float | None, micro_batch_size: int | None) -> "TrainEngine":
        try:
            import deepspeed
        except ImportError as e:
            raise ImportError("dist.backend=deepspeed needs DeepSpeed: pip install 'veripo[deepspeed]' "
                              "(on a CPU-only machine: DS_BUILD_OPS=0 pip install deepspeed)") from e
        ds_config = load_deepspeed_config(cfg, grad_clip, micro_batch_size)
        if info.device.type == "cuda" and next(model.parameters()).device != info.device:
            model.to(info.device)
        engine, ds_optimizer, _, ds_scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config)
        out = cls("deepspeed", engine, engine.module, ds_optimizer, ds_scheduler, info.rank, info.world_size)
        out.ds_config = ds_config
        return out

    # ------------------------------------------------------------------ training
    @contextlib.contextmanager
    def accumulating(self, last: bool) -> Iterator[None]:
        """Wrap one micro-batch's forward + backward; ``last`` marks the final one before ``step``."""
        self._last = bool(last)
        try:
            if self.backend == "ddp" and not last:
                with self.model.no_sync():
                    yield
            else:
                if self._manual_boundary:
                    self.model.set_gradient_accumulation_boundary(bool(last))
                yield
        finally:
            self._last = None

    def backward(self, loss: torch.Tensor) -> None:
        self.guard.observe_loss(loss)
        if self.backend == "deepspeed":
            if self._last is None and self._manual_boundary:  # outside accumulating(): one micro-batch per step
                self._loose_backwards += 1
                if self._loose_backwards > 1:
                    raise RuntimeError("DeepSpeed: several backward() calls per step must each run inside "
                                       "engine.accumulating(last=...), otherwise only the last one's gradients count")
                self.model.set_gradient_accumulation_boundary(True)
            self.model.backward(loss)
        else:
            loss.backward()

    def step(self, grad_clip: float) -> float:
        """Clip to ``grad_clip`` (0 = off), optimiser step, scheduler step, zero grads; the pre-clip gradient norm."""
        if self.backend != "deepspeed":  # a non-finite loss or norm skips the update (StepGuard)
            return clip_and_step(self.unwrapped, self.optimizer, self.scheduler, grad_clip, self.guard,
                                 self.world_size)
        configured = float(self.ds_config.get("gradient_clipping", 0.0))
        if float(grad_clip) != configured and not self._warned_clip:
            log.warning("DeepSpeed clips at gradient_clipping=%s from its config, not %s: pass grad_clip= to "
                        "TrainEngine.create", configured, grad_clip)
            self._warned_clip = True
        self._loose_backwards = 0
        pre = None
        if self.model.zero_optimization_stage() == 0:  # no ZeRO optimiser: DeepSpeed reports no norm
            grads = [p.grad for p in self.unwrapped.parameters() if p.grad is not None]
            pre = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))\
                if grads else 0.0
        self.model.step()  # optimiser + lr scheduler at the boundary, then zero grads
        norm = self.model.get_global_grad_norm() if pre is None else pre
        norm = float("nan") if norm is None else float(norm)
        applied = bool(getattr(self.model, "was_step_applied", lambda: True)())
        seen = norm
        if not applied and not self.model.fp16_enabled():  # DeepSpeed's own inf/NaN check skipped the update
            seen = float("inf")  # (its reported norm is then the previous step's)
        if self.guard.after_external_step(seen, applied, self.world_size) and self.scheduler is not None:
            with warnings.catch_warnings():  # DeepSpeed does not step the schedule on a skipped step; we do,
                warnings.simplefilter("ignore", UserWarning)  # so it stays a function of the step (as elsewhere)
                self.scheduler.step()
        return norm

    def barrier(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()

    def close(self) -> None:
        """End of training: leave the process group (``ddp``/``deepspeed``; ZeRO-3 processes may abort at exit
        otherwise). ``none`` leaves a group someone else created alone."""
        if self.backend != "none" and dist.is_initialized():
            self.barrier()
            dist.destroy_process_group()

    def current_lr(self) -> float:
        """The learning rate the last optimiser step used (DeepSpeed's scheduler lives inside its optimiser)."""
        if self.backend == "deepspeed":
            return float(self.optimizer.param_groups[0]["lr"])
        return float(self.scheduler.get_last_lr()[0])

    # ------------------------------------------------------------------ checkpoints
    def save(self, run_dir: str | Path, steps_done: int, processor: Any, trainer_state: dict[str, Any],
             keep_last: int = 2) -> None:
        """Collective: rank 0 writes the checkpoint (policy, optimiser, scheduler, RNG, ``trainer_state``) for
        ``steps_done``; under DeepSpeed every rank then adds its partition of the training state."""
        from veripo.train.checkpoint import checkpoint_dir, save_checkpoint

        if self.is_main:
            save_checkpoint(run_dir, steps_done, self.unwrapped, processor, self.optimizer, self.scheduler,
                            trainer_state, keep_last=keep_last)
        self.barrier()
        if self.backend == "deepspeed":
            self.save_checkpoint(checkpoint_dir(run_dir, steps_done))

    def restore(self, ckpt: str | Path) -> dict[str, Any]:
        """Collective: load a checkpoint written by :meth:`save` (weights, optimiser, scheduler, RNG states) and
        return what it holds (``step``, ``trainer``: the stage's own state)."""
        from veripo.train.checkpoint import load_policy_weights, load_trainer_state, set_rng_state

        state = load_trainer_state(ckpt)
        if self.backend == "deepspeed":
            self.load_checkpoint(ckpt)
        else:
            load_policy_weights(self.unwrapped, ckpt)
            self.load_state_dict({"optimizer": state["optimizer"], "scheduler": state["scheduler"]})
        set_rng_state(state["rng"])
        return state

    def save_final(self, processor: Any, folder: str | Path, summary: dict[str, Any],
                   extra_files: Callable[[Path], None] | None = None) -> None:
        """Collective: the trained policy in Hugging Face format in ``folder``, the stage's ``extra_files(folder)``
        (value heads, ...), and ``folder/done.json`` (written last: a stage is finished when it exists). ZeRO-3's
        partitioned weights are gathered first."""
        from veripo.io_utils import atomic_write_json
        from veripo.models.lora import save_policy

        weights = self.full_state_dict() if self.backend == "deepspeed" else None
        if self.is_main:
            save_policy(self.unwrapped, processor, folder, state_dict=weights)
            if extra_files is not None:
                extra_files(Path(folder))
            atomic_write_json(Path(folder) / "done.json", summary)
        self.barrier()

    def state_dict(self) -> dict[str, Any]:
        """Optimiser + scheduler state (``none``/``ddp``: identical on every rank, so rank 0 may save it alone)."""
        if self.backend == "deepspeed":
            raise RuntimeError("DeepSpeed state is partitioned over ranks: call engine.save_checkpoint(folder) on every rank")
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.backend == "deepspeed":
            raise RuntimeError("DeepSpeed state is partitioned over ranks: call engine.load_checkpoint(folder) on every rank")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def save_checkpoint(self, folder: str | Path) -> Path:
        """Collective (every rank calls it): write the training state under ``folder``.

        ``deepspeed``: DeepSpeed's own sharded checkpoint in ``folder/deepspeed`` (model, fp32 master weights,
        optimiser partitions, scheduler); ``none``/``ddp``: rank 0 writes ``folder/engine_state.pt``."""
        folder = Path(folder)
        if self.backend == "deepspeed":
            self.model.save_checkpoint(str(folder / "deepspeed"), tag="state")
        else:
            if self.is_main:
                folder.mkdir(parents=True, exist_ok=True)
                torch.save(self.state_dict(), folder / "engine_state.pt")
            self.barrier()
        return folder

    def load_checkpoint(self, folder: str | Path) -> None:
        """Collective: restore what ``save_checkpoint`` wrote (model weights included for DeepSpeed)."""
        folder = Path(folder)
        if self.backend == "deepspeed":
            if not (folder / "deepspeed" / "state").is_dir():
                raise FileNotFoundError(f"{folder}: no DeepSpeed state (expected {folder / 'deepspeed' / 'state'})")
            path, _ = self.model.load_checkpoint(str(folder / "deepspeed"), tag="state")
            if path is None:
                raise RuntimeError(f"{folder / 'deepspeed'}: DeepSpeed could not load the checkpoint")
            return
        path = folder / "engine_state.pt"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no engine state in this checkpoint")
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))

    @contextlib.contextmanager
    def for_generation(self):
        """Around a rollout phase. Under ZeRO-3 every forward gathers its layers' partitions from all ranks, so
        ranks that generate different numbers of tokens or make different numbers of ``generate`` calls (groups
        of different sizes, trees, pruning) would wait on each other forever. Here the whole model is gathered
        once on every rank (one collective per phase, the same on all ranks) and generation runs locally; the
        partitions are restored on exit. Other backends: nothing to do."""
        if self.backend != "deepspeed" or self.world_size == 1 or self.model.zero_optimization_stage() != 3:
            yield
            return
        import deepspeed

        params = list(self.unwrapped.parameters())
        offload = getattr(self.model.optimizer, "parameter_offload", None) or self.model.optimizer
        with deepspeed.zero.GatheredParameters(params):
            # the per-layer hooks would still fetch and release partitions (collectives) on every forward:
            # detach them while the gathered weights serve generation, and register them again afterwards
            for p in params:
                p.ds_active_sub_modules.clear()
            for hook in offload.forward_hooks + offload.backward_hooks:
                hook.remove()
            offload.forward_hooks, offload.backward_hooks = [], []
            try:
                yield
            finally:
                offload._register_deepspeed_module(offload.module)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole model's weights on rank 0 (collective). ZeRO-3 partitions parameters, so
        ``unwrapped.state_dict()`` would be empty there; this gathers them (``stage3_gather_16bit_weights_on_model_save``)."""
        if self.backend == "deepspeed" and self.model.zero_optimization_stage() == 3:
            return self.model._zero3_consolidated_16bit_state_dict()
        return self.unwrapped.state_dict()
