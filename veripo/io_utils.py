"""Small file helpers shared by every stage: atomic writes and crash-safe JSONL append/read.

A killed run must lose nothing: whole files are written to a temporary sibling, fsynced and renamed;
JSONL records are appended one line at a time and flushed+fsynced, and a reader skips (and reports) a
torn last line left by a crash instead of failing.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


class JsonlAppender:
    """Append JSON records durably (one line each, flushed and fsynced per ``write``)."""

    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self._fh = open(self.path, "a", encoding="utf-8")
        self._fsync = fsync

    def _repair_torn_tail(self) -> None:
        """A crash mid-write can leave a last line without its newline: drop it."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            data = fh.read()
            cut = data.rfind(b"\n") + 1
            fh.truncate(cut)

    def write(self, record: dict[str, Any]) -> None:
        self.write_many([record])

    def write_many(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_jsonl(path: str | Path, errors: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file; a bad line is reported as ``file:line: why`` into
    ``errors`` (when given) and skipped, so one torn or malformed row never loses the rest."""
    path = Path(path)
    if not path.is_file():
        from veripo.errors import PathError

        raise PathError(f"file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                if errors is None:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                errors.append(f"{path}:{lineno}: not valid JSON ({e.msg})")
                continue
            if not isinstance(obj, dict):
                msg = f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}"
                if errors is None:
                    raise ValueError(msg)
                errors.append(msg)
                continue
            yield obj


def read_jsonl(path: str | Path, errors: list[str] | None = None) -> list[dict[str, Any]]:
    return list(iter_jsonl(path, errors))
