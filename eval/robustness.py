"""Robustness probes: re-run a benchmark on perturbed clips and report the relative degradation.

A frame transform rewrites each clip to a new mp4 *before* the model's own frame sampling, so any engine sees
it (the runner swaps the sample's path to the rewritten clip; clips are cached per transform under
``<out>/clips/<spec>/``):

``drop:P``    every frame after the first is dropped with probability ``P`` (seeded per clip) and replaced by the
              last kept frame — the stream "freezes", duration and frame count are unchanged, so fps-based
              sampling lands on stale frames (a dropped-frame stream).
``stride:K``  keep frames 0, K, 2K, …, written at ``fps / K`` — same duration, ``1/K`` the temporal resolution
              (a different sampling stride).

Relative degradation of a score ``s`` under a perturbation: ``(s_clean − s_perturbed) / s_clean``
(0 = unaffected, 1 = all lost, negative = improved; undefined when ``s_clean = 0``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from veripo.errors import VideoError


@dataclasses.dataclass(frozen=True)
class FrameTransform:
    """``kind`` in {"drop", "stride"}; ``amount`` = drop probability or stride; ``seed`` for drops."""

    kind: str
    amount: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind == "drop" and not 0.0 <= self.amount < 1.0:
            raise ValueError(f"drop probability must be in [0, 1), got {self.amount}")
        if self.kind == "stride" and (self.amount < 1 or int(self.amount) != self.amount):
            raise ValueError(f"stride must be a whole number >= 1, got {self.amount}")
        if self.kind not in ("drop", "stride"):
            raise ValueError(f"unknown frame transform {self.kind!r} (use drop:P or stride:K)")

    @property
    def spec(self) -> str:
        amount = int(self.amount) if self.kind == "stride" else self.amount
        return f"{self.kind}:{amount}" + (f":seed{self.seed}" if self.kind == "drop" else "")

    def frame_sources(self, total: int, clip_id: str) -> list[int]:
        """For each output frame, the input frame it shows."""
        if total < 1:
            raise ValueError("a clip with no frames")
        if self.kind == "stride":
            return list(range(0, total, int(self.amount)))
        digest = hashlib.sha256(f"{self.seed}:{clip_id}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        sources, last = [], 0
        for i in range(total):
            if i == 0 or rng.random() >= self.amount:
                last = i
            sources.append(last)
        return sources

    def output_fps(self, fps: float) -> float:
        return fps / self.amount if self.kind == "stride" else fps


def parse_frame_transform(text: str | None, seed: int = 0) -> FrameTransform | None:
    """``"drop:0.3"`` / ``"stride:2"`` / ``"none"`` -> a transform (or None)."""
    if not text or text.lower() == "none":
        return None
    kind, _, amount = text.partition(":")
    try:
        value = float(amount)
    except ValueError:
        raise ValueError(f"bad frame transform {text!r}: use drop:P (0<=P<1) or stride:K (K>=1)") from None
    return FrameTransform(kind.strip().lower(), value, seed)


def read_frames(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames of a video as uint8 [T, H, W, 3] plus its frame rate (PyAV)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError, OSError) as e:
        raise VideoError(f"{path}: cannot decode video ({e})") from None
    if not frames:
        raise VideoError(f"{path}: video has no frames")
    return np.stack(frames), fps


def transform_clip(src: str | Path, dst: str | Path, transform: FrameTransform, clip_id: str) -> Path:
    """Write ``transform(src)`` to ``dst`` (mp4, atomic); raises :class:`VideoError` for an undecodable source."""
    from veripo.video.write import write_mp4

    frames, fps = read_frames(src)
    h, w = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2  # H.264 needs even sizes
    out = frames[transform.frame_sources(len(frames), clip_id), :h, :w]
    rate = float(Fraction(transform.output_fps(fps)).limit_denominator(1000))
    return write_mp4(dst, np.ascontiguousarray(out), fps=rate)


def relative_degradation(clean: float, perturbed: float) -> float | None:
    """``(clean − perturbed) / clean``; ``None`` when the clean score is 0."""
    return None if clean == 0 else (clean - perturbed) / clean


def robustness_table(clean: dict[str, Any], perturbed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Compare a clean result with results under transforms: ``{spec: {overall, degradation, tasks}}``."""
    out: dict[str, Any] = {"clean_overall": clean["overall"], "perturbations": {}}
    for spec, res in perturbed.items():
        tasks = {}
        for task, v in res.get("tasks", {}).items():
            base = clean.get("tasks", {}).get(task)
            if base is not None:
                tasks[task] = {"score": v["score"], "degradation": relative_degradation(base["score"], v["score"])}
        out["perturbations"][spec] = {"overall": res["overall"],
                                      "degradation": relative_degradation(clean["overall"], res["overall"]),
                                      "tasks": tasks}
    return out
