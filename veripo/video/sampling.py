"""Which frames to take from a video, and at what size (``VideoSampling``, ``sample_indices``, ``target_size``).

The rules are qwen-vl-utils' (0.0.14, ``vision_process.py``: ``smart_nframes``, ``calculate_video_frame_range``,
``fetch_video``'s pixel budget, ``smart_resize``), Qwen2.5-VL's reference pipeline, so that a row sampled here and
one prepared with ``qwen_vl_utils.process_vision_info`` give the model the same frames (tests/test_video_qwen_parity.py
compares indices, sizes, pixel values and ``second_per_grid_ts`` with qwen-vl-utils itself):

    range:        [video_start, video_end] seconds -> frames ceil(start * fps) .. min(floor(end * fps), T - 1)
                  (the whole clip when neither is set); R = frames in the range
    fixed count:  n = round(num_frames / frame_factor) * frame_factor                    (Python round)
    by rate:      n = floor(min(max(R / native_fps * fps, min_frames'), max_frames', R) / frame_factor) * frame_factor
                  with min_frames' / max_frames' rounded up / down to multiples of frame_factor
    indices:      round(linspace(first, last, n))            (torch.linspace, round half to even; first/last kept)
    frame size:   smart_resize(H, W, factor=28, min_pixels, max_pixels'), max_pixels' = min(max_pixels,
                  max(total_pixels / n * frame_factor, int(1.05 * min_pixels)))
    sampled fps:  n / R * native_fps  -> the processor's second_per_grid_ts = temporal_patch_size / sampled fps

Where veripo deliberately differs (documented and tested):
* too few frames: qwen-vl-utils raises (``nframes should in interval [2, T]``) for a fixed count above the
  clip's frame count and for a clip of one frame; veripo repeats frames (indices are non-decreasing), so a short
  clip in a large dataset is a smaller input, not a crash;
* ``max_pixels`` above 768 * 28 * 28 per frame is honoured (qwen-vl-utils caps a video frame there, with a
  warning); a ``resized_height`` / ``resized_width`` pair (a fixed size) is not supported.
"""
from __future__ import annotations

import dataclasses
import math

from veripo.config import doc, require

REAL_MODEL_MIN_PIXELS = 128 * 28 * 28
REAL_MODEL_MAX_PIXELS = 768 * 28 * 28
QWEN_TOTAL_PIXELS = 90316800  # qwen-vl-utils: MODEL_SEQ_LEN (128000) * 28 * 28 * 0.9, the whole clip's pixel budget


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
    total_pixels: int | None = doc("Pixel budget of the whole clip: per-frame max is at most total_pixels / n * "
                                   "frame_factor (qwen-vl-utils' rule; null: no clip budget).", QWEN_TOTAL_PIXELS)
    video_start: float | None = doc("Sample from this second of the clip on (null: its start).", None)
    video_end: float | None = doc("Sample up to this second of the clip (null: its end).", None)
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
        """The frame count to sample from ``total_frames`` frames (the clip, or its range) at ``native_fps``."""
        f = self.frame_factor
        if self.num_frames is not None:
            return max(f, round(self.num_frames / f) * f)  # more than the clip has: frames repeat (qwen-vl-utils raises)
        lo = math.ceil(self.min_frames / f) * f
        hi = math.floor(self.max_frames / f) * f
        n = total_frames / native_fps * self.fps if native_fps > 0 else 0.0
        n = math.floor(min(max(n, lo), hi, total_frames) / f) * f
        return max(f, n)  # a clip of one frame: repeated (qwen-vl-utils raises)

    def frame_range(self, total_frames: int, native_fps: float) -> tuple[int, int]:
        """First and last frame index of [video_start, video_end] (qwen-vl-utils' calculate_video_frame_range)."""
        if self.video_start is None and self.video_end is None:
            return 0, total_frames - 1
        duration = total_frames / native_fps
        start = 0 if self.video_start is None else math.ceil(max(0.0, min(self.video_start, duration)) * native_fps)
        end = total_frames - 1
        if self.video_end is not None:
            end = min(math.floor(max(0.0, min(self.video_end, duration)) * native_fps), total_frames - 1)
        if start >= end:
            raise ValueError(f"video_start {self.video_start} / video_end {self.video_end} leave no frames of a "
                             f"{duration:.2f} s clip ({total_frames} frames at {native_fps:g} fps)")
        return start, end

    def pixel_budget(self, n: int) -> tuple[int | None, int | None]:
        """(min, max) pixels per frame for a clip of ``n`` sampled frames (the clip budget included)."""
        if self.min_pixels is None and self.max_pixels is None:
            return None, None
        max_pixels = self.max_pixels
        if self.total_pixels is not None and n > 0:
            cap = max(self.total_pixels / n * self.frame_factor, int((self.min_pixels or 0) * 1.05))
            max_pixels = cap if max_pixels is None else min(max_pixels, cap)
        return self.min_pixels, max_pixels


# qwen-vl-utils' video content item keys -> VideoSampling fields ("nframes" is our num_frames)
MESSAGE_KEYS = {"fps": "fps", "nframes": "num_frames", "min_frames": "min_frames", "max_frames": "max_frames",
                "min_pixels": "min_pixels", "max_pixels": "max_pixels", "total_pixels": "total_pixels",
                "video_start": "video_start", "video_end": "video_end"}


def sampling_from_message(element: dict, base: VideoSampling | None = None) -> VideoSampling:
    """A qwen-vl-utils video content item (``{"type": "video", "video": path, "fps": 2.0, "max_pixels": ...}``,
    also ``nframes``, ``min_pixels``, ``total_pixels``, ``min_frames``/``max_frames``, ``video_start``/``video_end``)
    as a VideoSampling: the keys it gives replace ``base``'s (default ``VideoSampling()``); ``fps`` switches a
    fixed ``num_frames`` off. Raises ValueError naming a bad key."""
    if not isinstance(element, dict):
        raise ValueError(f"a video item must be a mapping, got {type(element).__name__}")
    if "resized_height" in element or "resized_width" in element:
        raise ValueError("resized_height/resized_width (a fixed frame size) is not supported: use min_pixels/max_pixels")
    unknown = sorted(set(element) - set(MESSAGE_KEYS) - {"type", "video"})
    if unknown:
        raise ValueError(f"unknown video option {unknown[0]!r} (valid: {', '.join(sorted(MESSAGE_KEYS))})")
    if "fps" in element and "nframes" in element:
        raise ValueError("a video item takes fps or nframes, not both")
    values = {MESSAGE_KEYS[k]: v for k, v in element.items() if k in MESSAGE_KEYS}
    if "fps" in values:
        values["num_frames"] = None
    try:
        return dataclasses.replace(base or VideoSampling(), **values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad video options {values}: {e}") from None


def sample_indices(total_frames: int, n: int, first: int = 0, last: int | None = None) -> list[int]:
    """``n`` frame indices ``round(linspace(first, last, n))`` (last defaults to the last frame); repeats when n
    exceeds the frames in the range. Same arithmetic as qwen-vl-utils (torch.linspace in float32, half to even)."""
    import torch

    if total_frames < 1:
        raise ValueError("a video with no frames has nothing to sample")
    last = total_frames - 1 if last is None else last
    return torch.linspace(first, last, n).round().long().tolist()


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
