"""Shared test fixtures for the tiny-model kit and real mp4 files (to be moved into conftest.py by the lead).

The kit and the videos are built once per test session (cached at module level, so importing the fixtures
into several test modules still builds once) into a temporary directory removed at exit.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import veripo  # noqa: F401  (torchvision shim before transformers)

_ROOT: Path | None = None
_CACHE: dict[str, Path] = {}


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="veripo-test-kit-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


def build_kit_once() -> Path:
    """The default tiny kit (TinyModelSpec(), seed 0), built on first use."""
    if "kit" not in _CACHE:
        from veripo.models.tiny import build_tiny_kit

        _CACHE["kit"] = build_tiny_kit(_root() / "tiny-kit")
    return _CACHE["kit"]


def moving_square_frames(num_frames: int = 16, size: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 [T, size, size, 3]: a red square moving right on a grey background; frame t's green channel = 10 t."""
    rng = np.random.default_rng(seed)
    frames = np.full((num_frames, size, size, 3), 60, dtype=np.uint8)
    frames += rng.integers(0, 5, frames.shape, dtype=np.uint8)
    for t in range(num_frames):
        x = int(t * (size - 16) / max(1, num_frames - 1))
        frames[t, 24:40, x:x + 16] = (220, 30, 30)
        frames[t, :4, :4, 1] = min(255, 10 * t)  # a frame-id marker in the top-left corner
    return frames


def write_videos_once() -> dict[str, Path]:
    """{'sq16': 16 frames at 8 fps 64x64, 'wide': 24 frames at 12 fps 128x96, 'empty': 0 bytes, 'corrupt': random bytes}."""
    if "videos" not in _CACHE:
        from veripo.video.write import write_mp4

        d = _root() / "videos"
        d.mkdir(parents=True, exist_ok=True)
        write_mp4(d / "sq16.mp4", moving_square_frames(16, 64), fps=8)
        wide = np.concatenate([moving_square_frames(24, 96, seed=1)] * 1, axis=0)
        wide = np.concatenate([wide, wide[:, :, :32]], axis=2)  # 96 high x 128 wide
        write_mp4(d / "wide.mp4", np.ascontiguousarray(wide), fps=12)
        (d / "empty.mp4").write_bytes(b"")
        (d / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        _CACHE["videos"] = d
    d = _CACHE["videos"]
    return {name: d / f"{name}.mp4" for name in ("sq16", "wide", "empty", "corrupt")}


@pytest.fixture(scope="session")
def tiny_kit_dir() -> Path:
    return build_kit_once()


@pytest.fixture()
def tiny_policy(tiny_kit_dir):
    """A freshly loaded (model, processor) from the session kit: tests may modify it freely."""
    from veripo.models.load import load_policy

    return load_policy(tiny_kit_dir)


@pytest.fixture(scope="session")
def video_files() -> dict[str, Path]:
    return write_videos_once()
