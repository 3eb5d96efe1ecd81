"""Metrics to ``metrics.jsonl`` (always) and TensorBoard (when installed), plus the progress bar."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from veripo.io_utils import JsonlAppender


class MetricsLogger:
    def __init__(self, run_dir: str | Path, tensorboard: bool = True, name: str = "metrics.jsonl"):
        self.path = Path(run_dir) / name
        self._jsonl = JsonlAppender(self.path, fsync=False)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed: JSONL only
                self._tb = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        clean = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in metrics.items()}
        self._jsonl.write({"step": step, "time": time.time(), **clean})
        if self._tb is not None:
            for k, v in clean.items():
                if isinstance(v, float) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def progress(total: int, desc: str, initial: int = 0, unit: str = "step"):
    """A tqdm bar with an ETA (disabled with TQDM_DISABLE=1 or when not needed)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                disable=os.environ.get("TQDM_DISABLE", "") not in ("", "0"))
