"""An in-memory LRU cache of decoded clips, so each video is decoded once per run.

Key: (absolute path, file mtime in ns, file size, sampling settings, backend). Editing or replacing the
file changes mtime/size and so misses; the same file under other sampling settings is a separate entry.
Bounded by total frame bytes (1 GiB by default) and, as a backstop, by entry count (least recently used entries
are evicted first; a single clip larger than the byte budget is returned but not kept). The count bound is far
above any data set that fits the bytes: at 256, the demo's 512 small train clips were decoded again every epoch.
Thread-safe. Errors are not cached: a bad video raises ``VideoError`` on every request (callers count and skip it).
"""
from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Callable

from veripo.errors import VideoError
from veripo.video.decode import VideoClip, decode_video
from veripo.video.sampling import VideoSampling


class FrameCache:
    """``cache.get(path, sampling)`` -> VideoClip, decoding only on a miss. ``stats()`` reports hits/misses."""

    def __init__(self, max_items: int = 100_000, max_bytes: int = 1 << 30, backend: str = "auto",
                 decoder: Callable[..., VideoClip] = decode_video, sampling: VideoSampling | None = None):
        """``sampling``: used by ``get`` when it is called without one (default ``VideoSampling()``)."""
        if max_items < 1 or max_bytes < 1:
            raise ValueError("max_items and max_bytes must be >= 1")
        self.max_items, self.max_bytes, self.backend = max_items, max_bytes, backend
        self._decoder = decoder
        self.sampling = sampling or VideoSampling()
        self._entries: "collections.OrderedDict[tuple, VideoClip]" = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    @staticmethod
    def key_for(path: str | Path, sampling: VideoSampling, backend: str = "auto") -> tuple:
        path = Path(path).absolute()
        try:
            st = path.stat()
        except FileNotFoundError:
            raise VideoError(f"{path}: video file not found") from None
        return (str(path), st.st_mtime_ns, st.st_size, sampling.key(), backend)

    def get(self, path: str | Path, sampling: VideoSampling | None = None) -> VideoClip:
        sampling = sampling or self.sampling
        key = self.key_for(path, sampling, self.backend)
        with self._lock:
            clip = self._entries.get(key)
            if clip is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return clip
            self.misses += 1
        clip = self._decoder(path, sampling, backend=self.backend)  # decode outside the lock
        self._put(key, clip)
        return clip

    def _put(self, key: tuple, clip: VideoClip) -> None:
        with self._lock:
            if key in self._entries or clip.nbytes > self.max_bytes:
                return
            self._entries[key] = clip
            self._bytes += clip.nbytes
            while len(self._entries) > self.max_items or self._bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.nbytes
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def stats(self) -> dict[str, int]:
        return {"items": len(self._entries), "bytes": self._bytes, "hits": self.hits, "misses": self.misses,
                "evictions": self.evictions}
