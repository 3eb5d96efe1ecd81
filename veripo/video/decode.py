"""Decode a video file into sampled RGB frames with their true timestamps (decord first, PyAV fallback).

``decode_video(path, sampling)`` -> ``VideoClip``. Frame choice follows ``veripo.video.sampling`` (qwen-vl-utils'
rules: the same indices, sizes and pixel values as ``qwen_vl_utils.fetch_video`` on decord); each kept
frame's timestamp is ``index / native_fps`` (constant-frame-rate assumption, the same one the processor's
``VideoMetadata`` makes, so the model's temporal positions and these timestamps agree).

Resizing is done here, not left to the processor: frames are resized to the sampling's pixel budget with
Qwen2-VL's ``smart_resize`` rule (aspect kept, sides multiples of 28, bicubic with antialias, rounded to uint8 as
torchvision's resize of a uint8 tensor does, which is what qwen-vl-utils calls). That keeps the
frame cache small (a 1080p clip is cached at model size, not native size). When the processor has the same
budget (``sampling_for_processor``), its own resize is then the identity. With ``min_pixels = max_pixels =
None`` frames keep their native size and the processor alone decides.

Bad input never crashes with a library traceback: a missing, empty (0-byte), corrupt or frameless file
raises ``veripo.errors.VideoError`` whose message names the file and what each backend said.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from veripo.errors import VideoError
from veripo.video.sampling import VideoSampling, sample_indices, target_size

BACKENDS = ("auto", "decord", "pyav")
_CHUNK = 8


@dataclasses.dataclass
class VideoClip:
    """Sampled frames of one video.

    frames       uint8 [T, H, W, 3] RGB (already resized to the sampling's pixel budget, if it has one)
    timestamps   seconds of each sampled frame in the source video (index / native_fps)
    indices      frame indices in the source video (non-decreasing)
    native_fps   the file's average frame rate;  total_frames: frames in the file
    path         absolute path of the file;  backend: "decord" or "pyav"
    span_frames  frames in the sampled range (video_start..video_end); None: the whole file
    """

    frames: np.ndarray
    timestamps: list[float]
    indices: list[int]
    native_fps: float
    total_frames: int
    path: str
    backend: str = ""
    span_frames: int | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        return self.total_frames / self.native_fps if self.native_fps > 0 else 0.0

    @property
    def sampled_fps(self) -> float:
        """Frames per second of the sample, as the processor computes it: len(indices) / frames in range * native_fps."""
        return len(self.indices) / (self.span_frames or self.total_frames) * self.native_fps

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)

    def metadata(self):
        """transformers ``VideoMetadata`` for the processor (gives the right ``second_per_grid_ts``)."""
        from transformers.video_utils import VideoMetadata

        return VideoMetadata(
            total_num_frames=self.span_frames or self.total_frames, fps=self.native_fps, width=int(self.frames.shape[2]),
            height=int(self.frames.shape[1]), duration=self.duration, video_backend=self.backend,
            frames_indices=list(self.indices),
        )


def decode_video(path: str | Path, sampling: VideoSampling | None = None, backend: str = "auto",
                 threads: int | None = None) -> VideoClip:
    """Sample frames from ``path`` following ``sampling`` (default ``VideoSampling()``); see the module doc.

    backend: "auto" (decord, then PyAV if decord is missing or fails), "decord" or "pyav". ``threads``: the
    decoder's own threads for this one video (FFmpeg frame/slice threads; the frames are the same for any count); None:
    decord 1, PyAV its own default.
    Raises VideoError (naming the file) for a missing, empty, corrupt or frameless video.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    sampling = sampling or VideoSampling()
    path = Path(path).absolute()
    if not path.exists():
        raise VideoError(f"{path}: video file not found")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: video file is empty (0 bytes)")
    readers = {"decord": _read_decord, "pyav": _read_pyav}
    order = ["decord", "pyav"] if backend == "auto" else [backend]
    failures: list[str] = []
    for name in order:
        try:
            frames, indices, native_fps, total, span = readers[name](str(path), sampling, threads)
        except VideoError:
            raise
        except Exception as e:  # decoder libraries raise many types (DECORDError, av.error.*, RuntimeError...)
            failures.append(f"{name}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
            continue
        timestamps = [round(i / native_fps, 6) for i in indices]
        return VideoClip(frames=frames, timestamps=timestamps, indices=list(indices), native_fps=float(native_fps),
                         total_frames=int(total), path=str(path), backend=name,
                         span_frames=span if span != total else None)
    raise VideoError(f"{path}: cannot decode video ({'; '.join(failures)})")


def resize_frames(frames: np.ndarray, sampling: VideoSampling, n_frames: int | None = None, chunk: int = 8) -> np.ndarray:
    """Resize uint8 [T, H, W, 3] frames to the sampling's smart_resize target (bicubic, antialias) for a clip of
    ``n_frames`` sampled frames (default T; the clip's pixel budget depends on it)."""
    min_pixels, max_pixels = sampling.pixel_budget(frames.shape[0] if n_frames is None else n_frames)
    if min_pixels is None and max_pixels is None:
        return np.ascontiguousarray(frames)
    height, width = frames.shape[1:3]
    new_h, new_w = target_size(height, width, min_pixels, max_pixels, sampling.size_factor)
    if (new_h, new_w) == (height, width):
        return np.ascontiguousarray(frames)
    import torch
    import torch.nn.functional as F

    out = np.empty((frames.shape[0], new_h, new_w, 3), dtype=np.uint8)
    for start in range(0, frames.shape[0], chunk):  # chunks bound the float32 working memory
        x = torch.from_numpy(np.ascontiguousarray(frames[start:start + chunk])).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
        out[start:start + chunk] = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def _check_total(total: int, native_fps: float) -> None:
    if total < 1:
        raise ValueError("the video stream has no frames")
    if not native_fps or native_fps <= 0 or not np.isfinite(native_fps):
        raise ValueError(f"the video stream has no usable frame rate ({native_fps})")


def _choose(total: int, native_fps: float, sampling: VideoSampling) -> tuple[list[int], int]:
    """(frame indices, frames in the sampled range) for a clip of ``total`` frames."""
    _check_total(total, native_fps)
    first, last = sampling.frame_range(total, native_fps) if total > 1 else (0, 0)
    span = last - first + 1
    return sample_indices(total, sampling.num_frames_for(span, native_fps), first, last), span


def _read_decord(path: str, sampling: VideoSampling, threads: int | None = None
                 ) -> tuple[np.ndarray, list[int], float, int, int]:
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=max(1, threads or 1))
    total, native_fps = len(reader), float(reader.get_avg_fps())
    indices, span = _choose(total, native_fps, sampling)
    chunks = []
    for start in range(0, len(indices), _CHUNK):  # decode + resize in chunks: peak memory stays ~_CHUNK native frames
        part = reader.get_batch(indices[start:start + _CHUNK]).asnumpy()
        if part.ndim != 4 or part.shape[0] != len(indices[start:start + _CHUNK]):
            raise ValueError(f"decord returned frames of shape {part.shape} for {len(indices)} indices")
        chunks.append(resize_frames(part, sampling, len(indices)))
    return np.concatenate(chunks), indices, native_fps, total, span


def _read_pyav(path: str, sampling: VideoSampling, threads: int | None = None
               ) -> tuple[np.ndarray, list[int], float, int, int]:
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        native_fps = float(rate) if rate else 0.0
        total = int(stream.frames or 0)
        if total <= 0:
            total = sum(1 for packet in container.demux(stream) if packet.size)
    indices, span = _choose(total, native_fps, sampling)
    frames, decoded = _pyav_pick(path, indices, sampling, threads)
    if decoded < total and indices[-1] >= decoded:  # the header over-counted frames: sample again from the true count
        total = decoded
        indices, span = _choose(total, native_fps, sampling)
        frames, _ = _pyav_pick(path, indices, sampling, threads)
    return frames, indices, native_fps, total, span


def _pyav_pick(path: str, indices: list[int], sampling: VideoSampling, threads: int | None = None
               ) -> tuple[np.ndarray, int]:
    """Decode sequentially and keep the (resized) frames at ``indices``, repeats allowed; returns (frames, frames decoded)."""
    import av

    wanted: dict[int, list[int]] = {}
    for slot, idx in enumerate(indices):
        wanted.setdefault(idx, []).append(slot)
    picked: list[Any] = [None] * len(indices)
    last = max(indices)
    decoded = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.thread_count = threads
        for frame in container.decode(stream):
            if decoded in wanted:
                array = resize_frames(frame.to_ndarray(format="rgb24")[None], sampling, len(indices))[0]
                for slot in wanted[decoded]:
                    picked[slot] = array
            decoded += 1
            if decoded > last:
                break
    if decoded == 0:
        raise ValueError("no frame could be decoded")
    if any(p is None for p in picked):
        return np.empty((0,)), decoded
    return np.stack(picked), decoded
