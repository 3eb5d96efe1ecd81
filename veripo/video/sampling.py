"""Which frames to take from a video, and at what size (``VideoSampling``, ``sample_indices``, ``target_size``).

Frame count (the rule of qwen-vl-utils' ``smart_nframes``, Qwen2.5-VL's reference pipeline, except that a clip
shorter than n frames repeats frames instead of failing):

    fixed count:  n = num_frames
    by rate:      n = clamp(round(duration * fps), min_frames, max_frames)
    then          n = max(frame_factor, round(n / frame_factor) * frame_factor)      # whole temporal patches

(rounding half up; by rate, never above max_frames).

Frame positions are evenly spaced from the first frame, ``index_k = floor(k * total / n)``, so the sampled
rate is exactly ``n / duration`` — the same ``sampled_fps`` the processor derives from ``video_metadata``
(``len(indices) / total * native_fps``) to set ``second_per_grid_ts = temporal_patch_size / sampled_fps``.
E.g. 16 frames at 8 fps sampled at fps=4 -> indices 0, 2, ..., 14, timestamps 0.0, 0.25, ..., 1.75 s.
A clip shorter than ``n`` frames repeats frames (indices are non-decreasing) rather than failing.

Frame size (Qwen2-VL ``smart_resize``): keep the aspect ratio, round each side to a multiple of
``factor = patch_size * merge_size`` (28), and scale so that ``min_pixels <= H * W <= max_pixels``.
"""
from __future__ import annotations

import dataclasses
import math

from veripo.config import doc, require

REAL_MODEL_MIN_PIXELS = 128 * 28 * 28
REAL_MODEL_MAX_PIXELS = 768 * 28 * 28


@dataclasses.dataclass(frozen=True)
class VideoSampling:
    """How a video becomes model frames: how many (fps or a fixed count) and how big (per-frame pixel budget)."""

    fps: float | None = doc("Frames per second to sample (ignored when num_frames is set).", 2.0)
    num_frames: int | None = doc("Fixed frame count; overrides fps (still rounded to frame_factor).", None)
    min_frames: int = doc("Fewest frames taken when sampling by fps.", 4)
    max_frames: int = doc("Most frames taken when sampling by fps (long videos are spread over it).", 32)
    min_pixels: int | None = doc("Per-frame minimum pixels after resizing (null: keep native size, the processor decides).",
                                 REAL_MODEL_MIN_PIXELS)
    max_pixels: int | None = doc("Per-frame maximum pixels after resizing (null: keep native size, the processor decides).",
                                 REAL_MODEL_MAX_PIXELS)
    frame_factor: int = doc("Frame count is a multiple of this (the ViT's temporal patch size).", 2)
    size_factor: int = doc("Frame sides are multiples of this (patch_size * merge_size).", 28)

    def __post_init__(self) -> None:
        self.check()

    def check(self, prefix: str = "") -> None:
        p = prefix
        require(self.num_frames is not None or (self.fps is not None and self.fps > 0), f"{p}fps", self.fps,
                f"sampling by rate needs fps > 0; or set {p}num_frames")
        require(self.num_frames is None or self.num_frames >= 1, f"{p}num_frames", self.num_frames,
                "must be >= 1, or null to sample by fps")
        require(1 <= self.min_frames <= self.max_frames, f"{p}min_frames", self.min_frames,
                f"need 1 <= {p}min_frames <= {p}max_frames (max_frames={self.max_frames})")
        for key in ("frame_factor", "size_factor"):
            require(getattr(self, key) >= 1, f"{p}{key}", getattr(self, key), "must be >= 1")
        for key in ("min_pixels", "max_pixels"):
            require(getattr(self, key) is None or getattr(self, key) >= 1, f"{p}{key}", getattr(self, key),
                    "must be >= 1, or null to keep the native size")
        require(self.min_pixels is None or self.max_pixels is None or self.min_pixels <= self.max_pixels,
                f"{p}min_pixels", self.min_pixels, f"must be <= {p}max_pixels={self.max_pixels}")

    def key(self) -> tuple:
        """A hashable identity of these settings (used in cache keys)."""
        return dataclasses.astuple(self)

    def num_frames_for(self, total_frames: int, native_fps: float) -> int:
        """The frame count to sample from a clip of ``total_frames`` at ``native_fps``."""
        f = self.frame_factor
        if self.num_frames is not None:
            return max(f, _round_half_up(self.num_frames / f) * f)
        duration = total_frames / native_fps if native_fps > 0 else 0.0
        n = min(max(_round_half_up(duration * self.fps), self.min_frames), self.max_frames)
        n = _round_half_up(n / f) * f
        if n > self.max_frames:  # rounding up must not break the cap
            n = (self.max_frames // f) * f
        return max(f, n)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def sample_indices(total_frames: int, n: int) -> list[int]:
    """``n`` evenly spaced frame indices from 0: ``floor(k * total / n)``; repeats frames when n > total."""
    if total_frames < 1:
        raise ValueError("a video with no frames has nothing to sample")
    return [min(total_frames - 1, (k * total_frames) // n) for k in range(n)]


def target_size(height: int, width: int, min_pixels: int | None, max_pixels: int | None, factor: int = 28) -> tuple[int, int]:
    """Qwen2-VL smart_resize: (H', W') multiples of ``factor``, aspect kept, ``min_pixels <= H'W' <= max_pixels``."""
    if height < 1 or width < 1:
        raise ValueError(f"bad frame size {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio of {width}x{height} is too extreme (> 200)")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if max_pixels is not None and h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif min_pixels is not None and h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def sampling_for_processor(processor, **overrides) -> VideoSampling:
    """A VideoSampling whose pixel budget and factors match ``processor``'s video processor (so it won't resize again)."""
    vp = processor.video_processor
    size = vp.size
    get = (lambda k: size.get(k)) if isinstance(size, dict) else (lambda k: getattr(size, k, None))
    values = dict(
        min_pixels=get("shortest_edge"),
        max_pixels=get("longest_edge"),
        frame_factor=int(vp.temporal_patch_size),
        size_factor=int(vp.patch_size * vp.merge_size),
    )
    values.update(overrides)
    return VideoSampling(**values)
