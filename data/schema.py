"""The training/eval row schema (JSONL, one object per line), compatible with Video-R1's data as-is.

Fields (Video-R1 names first; every other field is optional and kept in ``extra``):

==================  ===========================================================================
problem_id          unique id of the question (int or str; stored as str)
problem             the question text, without the options
data_type           ``video`` | ``image`` | ``text``
problem_type        ``multiple choice`` | ``numerical`` | ``OCR`` | ``free-form`` | ``regression``
options             list of option strings, e.g. ``["A. red", "B. green"]`` (multiple choice only)
solution            the ground truth, Video-R1 style ``"<answer>B</answer>"`` or a bare ``"B"``
path                video/image file; relative paths resolve against the JSONL file's folder
                    (or ``root`` when given)
video               optional, qwen-vl-utils' content item for the row's video: ``{"type": "video", "video":
                    path, "fps": 2.0, "max_pixels": ..., "nframes", "min_pixels", "total_pixels",
                    "min_frames"/"max_frames", "video_start"/"video_end"}`` (or just the path); its options
                    replace the run's ``video`` settings for this row (kept as ``video_options``)
response            optional target response (SFT warm start, demo templates)
data_source         optional provenance string
==================  ===========================================================================

:func:`load_samples` reports each bad row as ``file:line: why`` and skips it, or raises on the first one
in ``strict`` mode.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from veripo.errors import DataError

PROBLEM_TYPES = ("multiple choice", "numerical", "OCR", "free-form", "regression")
DATA_TYPES = ("video", "image", "text")
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S)


@dataclasses.dataclass
class Sample:
    problem_id: str
    problem: str
    problem_type: str
    solution: str
    data_type: str = "video"
    options: list[str] = dataclasses.field(default_factory=list)
    path: str | None = None
    response: str | None = None
    data_source: str | None = None
    video_options: dict[str, Any] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def answer(self) -> str:
        """The ground truth without Video-R1's ``<answer>`` tags."""
        m = _ANSWER_RE.search(self.solution)
        return (m.group(1) if m else self.solution).strip()

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra" and v is not None}
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, row: dict[str, Any], base_dir: str | Path | None = None) -> "Sample":
        """Validate one row; raises ``ValueError`` with the reason."""
        if not isinstance(row, dict):
            raise ValueError(f"expected a JSON object, got {type(row).__name__}")
        missing = [k for k in ("problem_id", "problem", "problem_type", "solution") if row.get(k) in (None, "")]
        if missing:
            raise ValueError(f"missing required field(s): {', '.join(missing)}")
        ptype = str(row["problem_type"])
        if ptype not in PROBLEM_TYPES:
            raise ValueError(f"problem_type {ptype!r} is not one of {list(PROBLEM_TYPES)}")
        path, video_options = _video_item(row)
        dtype = str(row.get("data_type") or ("video" if path else "text"))
        if dtype not in DATA_TYPES:
            raise ValueError(f"data_type {dtype!r} is not one of {list(DATA_TYPES)}")
        options = row.get("options") or []
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise ValueError("options must be a list of strings")
        if ptype == "multiple choice" and not options:
            raise ValueError("a multiple choice row needs options")
        if video_options and dtype != "video":
            raise ValueError(f"video options given for a {dtype} row")
        if dtype in ("video", "image"):
            if not path:
                raise ValueError(f"a {dtype} row needs a path")
            p = Path(str(path))
            if not p.is_absolute() and base_dir is not None:
                p = Path(base_dir) / p
            path = str(p)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        extra = {k: v for k, v in row.items() if k not in known and k != "video"}
        return cls(problem_id=str(row["problem_id"]), problem=str(row["problem"]), problem_type=ptype,
                   solution=str(row["solution"]), data_type=dtype, options=list(options),
                   path=str(path) if path else None, response=row.get("response"),
                   data_source=row.get("data_source"), video_options=video_options, extra=extra)


def _video_item(row: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    """(path, video options) of a row: ``path`` and/or a qwen-vl-utils ``video`` item (checked here)."""
    item, options, path = row.get("video"), row.get("video_options"), row.get("path")
    if isinstance(item, str):
        item = {"video": item}
    if item is not None and not isinstance(item, dict):
        raise ValueError(f"video must be a path or a qwen-vl-utils video item, got {type(item).__name__}")
    if item:
        if path and item.get("video") and str(item["video"]) != str(path):
            raise ValueError(f"path {path!r} and video {item['video']!r} name different files")
        path = path or item.get("video")
        options = {**(options or {}), **{k: v for k, v in item.items() if k not in ("type", "video")}}
    if options:
        from veripo.video.sampling import sampling_from_message

        sampling_from_message(options)  # raises ValueError naming the bad option
    return path, (dict(options) if options else None)


def read_rows(path: str | Path) -> list[tuple[str, Any]]:
    """``(where, row)`` for each row of a JSONL file (``file:line``) or a JSON list (``file:item N``).
    A line that is not JSON gives a ``ValueError`` in place of the row."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
        return [(f"{path}:item {i + 1}", row) for i, row in enumerate(data)]
    rows: list[tuple[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append((f"{path}:{lineno}", json.loads(line)))
                except json.JSONDecodeError as e:
                    rows.append((f"{path}:{lineno}", ValueError(f"not valid JSON ({e.msg})")))
    return rows


def load_samples(path: str | Path, strict: bool = False, root: str | Path | None = None,
                 errors: list[str] | None = None) -> list[Sample]:
    """Read a JSONL (or a JSON list, as Video-R1 ships) of rows.

    Bad rows are described as ``file:line: why`` in ``errors`` and skipped; with ``strict`` the first
    bad row raises :class:`DataError`. Duplicate ``problem_id`` values are bad rows too.
    """
    path = Path(path)
    base = Path(root) if root else path.parent
    errs: list[str] = [] if errors is None else errors
    rows = read_rows(path)
    samples: list[Sample] = []
    seen: set[str] = set()
    for where, row in rows:
        try:
            if isinstance(row, ValueError):
                raise row
            sample = Sample.from_dict(row, base)
            if sample.problem_id in seen:
                raise ValueError(f"duplicate problem_id {sample.problem_id!r}")
        except ValueError as e:
            if strict:
                raise DataError(f"{where}: {e}") from None
            errs.append(f"{where}: {e}")
            continue
        seen.add(sample.problem_id)
        samples.append(sample)
    return samples


def write_samples(path: str | Path, samples: list[Sample], relative_to: str | Path | None = None) -> None:
    """Write rows atomically; video paths are made relative to ``relative_to`` when inside it."""
    import json

    from veripo.io_utils import atomic_write_text

    lines = []
    for s in samples:
        d = s.to_dict()
        if relative_to and d.get("path"):
            try:
                d["path"] = str(Path(d["path"]).resolve().relative_to(Path(relative_to).resolve()))
            except ValueError:
                pass
        lines.append(json.dumps(d, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
