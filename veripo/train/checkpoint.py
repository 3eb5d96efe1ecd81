"""Checkpoints a killed run resumes from: ``run_dir/checkpoints/step-000040/``.

Each holds the policy in Hugging Face format (adapters only for LoRA) plus ``trainer_state.pt``
(optimiser, scheduler, RNG states, the trainer's own state dict). A checkpoint directory is built under a
temporary name and renamed when complete, so ``latest_checkpoint`` never returns a torn one. Weights with a
NaN/inf (or overflowed) value are refused before anything is written (:mod:`veripo.train.nonfinite`), so the
newest checkpoint is always one a resumed run can start from.
"""
from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from veripo.models.lora import save_policy

_STEP_RE = re.compile(r"^step-(\d+)$")


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / "checkpoints"
    if not root.exists():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.pt").exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(run_dir: str | Path, step: int, model, processor, optimizer, scheduler,
                    trainer_state: dict[str, Any], keep_last: int = 2) -> Path:
    """Write the checkpoint for ``step`` atomically and prune all but the newest ``keep_last``."""
    from veripo.models.atomic_dir import atomic_directory
    from veripo.models.weights_check import check_finite_weights

    out = checkpoint_dir(run_dir, step)
    check_finite_weights(model, where=out)  # before anything is written: the last good checkpoint stays newest
    with atomic_directory(out) as tmp:
        save_policy(model, processor, tmp / "policy")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(), "trainer": trainer_state, "step": step}, tmp / "trainer_state.pt")
    if keep_last > 0:
        for _, old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return out


def load_trainer_state(ckpt: str | Path) -> dict[str, Any]:
    return torch.load(Path(ckpt) / "trainer_state.pt", map_location="cpu", weights_only=False)


def load_policy_weights(model, ckpt: str | Path) -> None:
    """Load the checkpoint's policy weights (full or LoRA adapters) into ``model`` in place.

    The checkpoint is read back with the same loader users use (``save_pretrained`` may rename keys on
    disk, e.g. Qwen2.5-VL's ``visual.*``), and its state dict copied over."""
    from veripo.models import load_policy

    policy = Path(ckpt) / "policy"
    if not policy.exists():
        from veripo.errors import PathError

        raise PathError(f"{policy}: checkpoint has no policy folder")
    loaded, _ = load_policy(policy, device=str(next(model.parameters()).device))
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [m for m in missing if not m.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"{policy}: weights do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
