"""The rollout store (the "Replay" step): every rollout is appended to ``rollouts.jsonl`` before it is
trained on. It is the file the verifier reads, and what a resumed run replays instead of sampling again.

A step's rollouts are appended by one write. A crash in that write leaves a torn last line (no newline); the
store then removes the torn line *and every line of the same step before it* (the step's rows are the last
lines of the file), so that step is absent from :meth:`RolloutStore.by_step` and a resumed run samples it again
whole instead of replaying a group with a rollout missing. What was removed is in :attr:`RolloutStore.repaired`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import defaultdict
from pathlib import Path

from veripo.io_utils import BadRow, JsonlAppender, atomic_write_text, iter_jsonl
from veripo.records import RolloutRecord

_STEP_RE = re.compile(rb'"step"\s*:\s*(-?\d+)')


@dataclasses.dataclass
class TornTail:
    """What :meth:`RolloutStore.repair_tail` removed: the torn line (1-based number, its bytes), the step it
    belonged to (``None`` when the fragment is too short to say: then only the fragment is removed) and how many
    complete lines of that step were removed with it."""
    line: int
    nbytes: int
    step: int | None
    dropped_lines: int


def _step_of(raw: bytes) -> int | None:
    m = _STEP_RE.search(raw)
    return int(m.group(1)) if m else None


class RolloutStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._writer: JsonlAppender | None = None
        self.repaired: TornTail | None = None

    def append(self, records: list[RolloutRecord]) -> None:
        if self._writer is None:
            self._writer = JsonlAppender(self.path)
        self._writer.write_many([r.to_dict() for r in records])

    def repair_tail(self) -> TornTail | None:
        """Remove a torn last line (a write cut by a crash) and the complete lines of its step before it;
        returns what was removed (also kept in :attr:`repaired`), or ``None`` when the file ends cleanly."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return None
            fh.seek(0)
            lineno, offset, run_start, run_step, run_len = 0, 0, 0, None, 0
            for raw in fh:  # (offset, step) of the trailing run of lines that share one step
                lineno += 1
                if not raw.endswith(b"\n"):
                    break
                step = _step_of(raw)
                if step is None or step != run_step:
                    run_start, run_step, run_len = offset, step, 0
                run_len += 1
                offset += len(raw)
        torn_step = _step_of(raw)
        cut, dropped = offset, 0
        if torn_step is not None and torn_step == run_step:
            cut, dropped = run_start, run_len
        with open(self.path, "rb+") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
        self.repaired = TornTail(line=lineno, nbytes=len(raw), step=torn_step, dropped_lines=dropped)
        return self.repaired

    def by_step(self, errors: list[str] | None = None) -> dict[int, list[RolloutRecord]]:
        """Stored rollouts grouped by GRPO step. A torn tail is removed first (:meth:`repair_tail`: its step is
        then absent, to be sampled again) and reported in ``errors``; a malformed line elsewhere is reported as
        ``file:line: why`` and skipped."""
        errs: list[str] = errors if errors is not None else []
        torn = self.repair_tail()
        if torn is not None:
            what = (f"with the {torn.dropped_lines} complete line(s) of step {torn.step} before it; step "
                    f"{torn.step} will be sampled again" if torn.step is not None else "(its step is unknown)")
            errs.append(BadRow(self.path, torn.line, f"torn last line ({torn.nbytes} bytes, a write cut by a "
                                                     f"crash) removed {what}"))
        out: dict[int, list[RolloutRecord]] = defaultdict(list)
        if self.path.exists():
            for row in iter_jsonl(self.path, errs):
                try:
                    rec = RolloutRecord.from_dict(row)
                except (TypeError, ValueError) as e:
                    errs.append(f"{self.path}: {e}")
                    continue
                out[rec.step].append(rec)
        return dict(out)

    def truncate_after(self, step: int) -> None:
        """Keep only rollouts of steps <= ``step`` (used when a run restarts without its later checkpoints)."""
        if not self.path.exists():
            return
        keep = [json.dumps(r, ensure_ascii=False) for r in iter_jsonl(self.path, []) if int(r.get("step", 0)) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in keep))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
