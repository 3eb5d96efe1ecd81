"""The rollout store (the "Replay" step): every rollout is appended to ``rollouts.jsonl`` before it is
trained on. It is the file the verifier reads, and what a resumed run replays instead of sampling again."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from veripo.io_utils import JsonlAppender, iter_jsonl
from veripo.records import RolloutRecord


class RolloutStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._writer: JsonlAppender | None = None

    def append(self, records: list[RolloutRecord]) -> None:
        if self._writer is None:
            self._writer = JsonlAppender(self.path)
        self._writer.write_many([r.to_dict() for r in records])

    def by_step(self, errors: list[str] | None = None) -> dict[int, list[RolloutRecord]]:
        """Stored rollouts grouped by GRPO step (a torn or malformed line is reported and skipped)."""
        out: dict[int, list[RolloutRecord]] = defaultdict(list)
        if self.path.exists():
            for row in iter_jsonl(self.path, errors if errors is not None else []):
                try:
                    rec = RolloutRecord.from_dict(row)
                except (TypeError, ValueError) as e:
                    if errors is not None:
                        errors.append(f"{self.path}: {e}")
                    continue
                out[rec.step].append(rec)
        return dict(out)

    def truncate_after(self, step: int) -> None:
        """Keep only rollouts of steps <= ``step`` (used when a run restarts without its later checkpoints)."""
        if not self.path.exists():
            return
        from veripo.io_utils import atomic_write_text
        import json

        keep = [json.dumps(r, ensure_ascii=False) for r in iter_jsonl(self.path, []) if int(r.get("step", 0)) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in keep))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
