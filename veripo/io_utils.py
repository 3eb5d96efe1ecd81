"""Small file helpers shared by every stage: atomic writes and crash-safe JSONL append/read.

A killed run must lose nothing: whole files are written to a temporary sibling, fsynced and renamed;
JSONL records are appended one line at a time and flushed+fsynced. Readers read JSONL in binary one line at a
time: a bad line (invalid UTF-8, not JSON, over the size limit, or a torn last line left by a crash) is reported
as ``file:line: why`` and set aside (a :class:`BadRow`, written to ``rejects.jsonl`` by the commands) instead of
failing the whole file.
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


def repair_torn_tail(path: str | Path) -> int:
    """Cut a last line that lacks its newline (a crash inside its write), even when it parses as JSON: an
    appender reading the file to resume must see the rows it will keep. Returns the bytes removed."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return 0
        size = fh.seek(0, os.SEEK_END)
        cut, block = size, 1 << 16
        while cut > 0:  # find the last newline reading backwards, one block at a time
            start = max(0, cut - block)
            fh.seek(start)
            nl = fh.read(cut - start).rfind(b"\n")
            if nl >= 0:
                cut = start + nl + 1
                break
            cut = start
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())
        return size - cut


class JsonlAppender:
    """Append JSON records durably (one line each, flushed and fsynced per ``write``); a torn last line left
    by a crash is cut first (:func:`repair_torn_tail`)."""

    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._fsync = fsync

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


# ------------------------------------------------------------------------------------------ reading
# Input limits (bytes). A row longer than MAX_LINE_BYTES is set aside without being held in memory whole; a
# JSON (not JSONL) file is parsed whole, so it may not exceed MAX_JSON_FILE_BYTES. Both can be raised with the
# environment variables of the same name (VERIPO_MAX_LINE_BYTES, VERIPO_MAX_JSON_FILE_BYTES).
DEFAULT_MAX_LINE_BYTES = 64 << 20
DEFAULT_MAX_JSON_FILE_BYTES = 2 << 30
REJECTS_FILE = "rejects.jsonl"
_RAW_KEEP = 4096  # characters of a bad line kept in the rejects file


def _limit(name: str, default: int) -> int:
    value = os.environ.get(f"VERIPO_{name}")
    try:
        return int(value) if value else default
    except ValueError:
        from veripo.errors import DataError

        raise DataError(f"VERIPO_{name}={value!r} is not a number of bytes") from None


def max_line_bytes() -> int:
    return _limit("MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES)


def max_json_file_bytes() -> int:
    return _limit("MAX_JSON_FILE_BYTES", DEFAULT_MAX_JSON_FILE_BYTES)


class BadRow(str):
    """A row set aside: the ``file:line: reason`` message (it *is* that string, so lists of error strings keep
    working) plus the fields the rejects file records (``file``, ``line``, ``reason``, ``raw`` bytes)."""

    file: str
    line: int | None
    reason: str
    raw: bytes

    def __new__(cls, file: str | Path, line: int | None, reason: str, raw: bytes = b"") -> "BadRow":
        where = f"{file}:{line}" if line is not None else str(file)
        self = super().__new__(cls, f"{where}: {reason}")
        self.file, self.line, self.reason, self.raw = str(file), line, reason, bytes(raw)
        return self

    def record(self) -> dict[str, Any]:
        """The rejects-file row: where, why, and the raw line escaped (invalid UTF-8 as ``\\xNN``)."""
        text = self.raw.decode("utf-8", "backslashreplace")
        return {"file": self.file, "line": self.line, "reason": self.reason, "raw": text[:_RAW_KEEP],
                "raw_bytes": len(self.raw), "raw_truncated": len(text) > _RAW_KEEP}


class RowError(ValueError):
    """A line that could not be read as a JSON value (invalid UTF-8, not JSON, too long)."""

    def __init__(self, reason: str, raw: bytes = b""):
        super().__init__(reason)
        self.raw = raw


def as_bad_row(path: str | Path, line: int | None, error: BaseException | str, raw: bytes = b"") -> BadRow:
    raw = getattr(error, "raw", None) or raw
    return BadRow(path, line, str(error), raw)


def iter_lines(path: str | Path, limit: int | None = None) -> Iterator[tuple[int, bytes | RowError]]:
    """``(line number, raw bytes)`` of each non-blank line, read in binary one line at a time; a line over
    ``limit`` bytes (default :func:`max_line_bytes`) comes as a :class:`RowError` and is skipped unread."""
    limit = max_line_bytes() if limit is None else limit
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            line = fh.readline(limit + 1)
            if not line:
                return
            lineno += 1
            if len(line) > limit and not line.endswith(b"\n"):
                head, n = line[:_RAW_KEEP], len(line)
                while line and not line.endswith(b"\n"):  # skip the rest of the line in bounded chunks
                    line = fh.readline(1 << 20)
                    n += len(line)
                yield lineno, RowError(f"line is {n} bytes, over the {limit}-byte limit "
                                       "(VERIPO_MAX_LINE_BYTES)", head)
                continue
            if line.strip():
                yield lineno, line


def parse_line(raw: bytes) -> Any:
    """One JSONL line -> its JSON value; :class:`RowError` saying why not (invalid UTF-8 names the byte)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RowError(f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})", raw) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RowError(f"not valid JSON ({e.msg})", raw) from None
    except RecursionError:
        raise RowError("not valid JSON (nested too deeply)", raw) from None


def iter_rows(path: str | Path, limit: int | None = None) -> Iterator[tuple[int, Any, bytes]]:
    """``(line number, JSON value or RowError, raw bytes)`` for each non-blank line of a JSONL file."""
    for lineno, raw in iter_lines(path, limit):
        if isinstance(raw, RowError):
            yield lineno, raw, raw.raw
            continue
        try:
            yield lineno, parse_line(raw), raw
        except RowError as e:
            yield lineno, e, raw


def iter_jsonl(path: str | Path, errors: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file; a bad line (invalid UTF-8, not JSON, not an object, too long)
    is reported as a :class:`BadRow` (``file:line: why``) into ``errors`` and skipped, so one torn or malformed
    row never loses the rest. Without ``errors`` the first bad line raises :class:`~veripo.errors.DataError`."""
    from veripo.errors import DataError

    path = Path(path)
    if not path.is_file():
        from veripo.errors import PathError

        raise PathError(f"file not found: {path}")
    for lineno, obj, raw in iter_rows(path):
        if not isinstance(obj, RowError) and not isinstance(obj, dict):
            obj = RowError(f"expected a JSON object, got {type(obj).__name__}", raw)
        if isinstance(obj, RowError):
            bad = as_bad_row(path, lineno, obj, raw)
            if errors is None:
                raise DataError(str(bad))
            errors.append(bad)
            continue
        yield obj


def read_jsonl(path: str | Path, errors: list[str] | None = None) -> list[dict[str, Any]]:
    return list(iter_jsonl(path, errors))


def write_rejects(out_dir: str | Path, bad: list[str], append: bool = False) -> Path | None:
    """Write the rows a command set aside to ``out_dir/rejects.jsonl`` (one pattern for every command): one
    JSON object per row with ``file``, ``line``, ``reason`` and the raw line escaped. Nothing is written (and an
    old file is removed) when nothing was set aside. Returns the path written, or ``None``."""
    path = Path(out_dir) / REJECTS_FILE
    if not bad:
        if not append:
            path.unlink(missing_ok=True)
        return None
    rows = [(b.record() if isinstance(b, BadRow) else {"file": None, "line": None, "reason": str(b)}) for b in bad]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if append and path.exists():
        text = path.read_text(encoding="utf-8") + text
    atomic_write_text(path, text)
    return path
