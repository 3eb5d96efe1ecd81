"""Validate data files, and convert Video-R1's released JSON into our JSONL.

Video-R1 (``Video-R1-260k.json``, ``Video-R1-COT-165k.json``; spec/veripo-method.md §7) ships a JSON list
of ``{problem_id, problem, data_type, problem_type, options, process, solution, path, data_source}``. Its
five problem types are exactly ours (``multiple choice``, ``numerical``, ``OCR``, ``free-form``,
``regression``), so rows load as-is with :func:`veripo.data.schema.load_samples`. :func:`convert_video_r1`
additionally

* accepts spelling variants of the types (``Multiple Choice``, ``multiple_choice``, ``numeric``, ``ocr``...),
* turns the SFT-only ``process`` (``<think>...</think>``) into our ``response`` the way Video-R1's SFT builds
  its target: ``process + "\\n" + solution``,
* resolves relative video paths against ``video_root`` (default: the JSON file's folder) and writes them
  relative to the output file when they lie under its folder (absolute otherwise),
* renames duplicate ``problem_id`` values (``id#2``, ``id#3``, ...) instead of dropping the rows, since
  the ids must be unique for us,
* and sets aside every bad row, reporting it as ``file:item N: why``.

Beyond the schema, :func:`check_sample` checks that a row can be scored: a multiple-choice answer is one of
its option letters, a numerical/regression answer is a number. :func:`validate_file` runs all checks on a
JSONL/JSON file (optionally opening every video with PyAV) and reports bad rows as ``file:line: why``.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from veripo.data.schema import Sample, read_rows, scorable_problems, write_samples
from veripo.errors import DataError

PROBLEM_TYPE_ALIASES = {
    "multiple choice": "multiple choice", "multiple-choice": "multiple choice", "multiple_choice": "multiple choice",
    "multichoice": "multiple choice", "mc": "multiple choice", "mcq": "multiple choice",
    "numerical": "numerical", "numeric": "numerical", "number": "numerical",
    "ocr": "OCR",
    "free-form": "free-form", "free form": "free-form", "free_form": "free-form", "freeform": "free-form",
    "open-ended": "free-form",
    "regression": "regression",
}
DATA_TYPE_ALIASES = {"video": "video", "image": "image", "text": "text", "videos": "video", "images": "image"}


@dataclasses.dataclass
class DataReport:
    """What a scan of a data file found: the good samples, the bad rows (``where: why``), counts."""

    path: Path
    n_rows: int = 0
    samples: list[Sample] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)  # things changed, not errors

    @property
    def n_ok(self) -> int:
        return len(self.samples)

    @property
    def n_bad(self) -> int:
        return self.n_rows - self.n_ok

    def counts(self, key: str) -> dict[str, int]:
        """Good rows per value of a field (``problem_type``, ``data_type`` or an extra like ``task``)."""
        c: Counter[str] = Counter()
        for s in self.samples:
            value = getattr(s, key) if hasattr(s, key) else s.extra.get(key)
            if value is not None:
                c[str(value)] += 1
        return dict(sorted(c.items()))

    def summary(self, max_errors: int = 50) -> str:
        lines = [f"{self.path}: {self.n_rows} rows, {self.n_ok} ok, {self.n_bad} bad"]
        for key in ("problem_type", "data_type", "task"):
            counts = self.counts(key)
            if counts:
                lines.append(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        lines += [f"  note: {n}" for n in self.notes]
        lines += self.errors[:max_errors]
        if len(self.errors) > max_errors:
            lines.append(f"  ... and {len(self.errors) - max_errors} more bad rows")
        return "\n".join(lines)


def normalise_video_r1_row(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Video-R1 row in our spelling (types via the alias tables, ``process`` -> ``response``)."""
    out = dict(row)
    for key, aliases in (("problem_type", PROBLEM_TYPE_ALIASES), ("data_type", DATA_TYPE_ALIASES)):
        value = out.get(key)
        if isinstance(value, str):
            out[key] = aliases.get(value.strip().lower().replace("  ", " "), value)
    process = out.pop("process", None)
    if process and not out.get("response") and out.get("solution"):
        out["response"] = f"{str(process).strip()}\n{str(out['solution']).strip()}"
    elif process:
        out["process"] = process
    return out


check_sample = scorable_problems  # the scorability rules live with the schema (the loaders apply them)


def check_video(path: str | Path) -> str | None:
    """Open a video with PyAV and decode its first frame; ``None`` when fine, else why not.

    Only the first frame is decoded so that checking a large real dataset stays fast."""
    import av

    path = Path(path)
    if not path.exists():
        return f"video not found: {path}"
    if path.stat().st_size == 0:
        return f"video is empty (0 bytes): {path}"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return f"no video stream in {path}"
            for _ in container.decode(video=0):
                return None
            return f"video has no decodable frames: {path}"
    except Exception as e:  # PyAV raises many error types (InvalidDataError, OSError, ...)
        return f"cannot decode video {path}: {type(e).__name__}: {e}"


def check_image(path: str | Path) -> str | None:
    from PIL import Image

    path = Path(path)
    if not path.exists():
        return f"image not found: {path}"
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # PIL raises several error types for bad files
        return f"cannot read image {path}: {type(e).__name__}: {e}"
    return None


def scan_rows(rows: Iterable[tuple[str, Any]], report: DataReport, base: Path, *, strict: bool = False,
              check_media: bool = False, rename_duplicates: bool = False) -> DataReport:
    """Validate ``(where, row)`` pairs into ``report``: schema (:meth:`Sample.from_dict`), scorability
    (:func:`check_sample`), unique ids, and optionally that every video/image opens."""
    seen: Counter[str] = Counter()
    media_cache: dict[str, str | None] = {}
    for where, row in rows:
        report.n_rows += 1
        try:
            if isinstance(row, Exception):
                raise ValueError(str(row))
            sample = Sample.from_dict(row, base)
            problems = check_sample(sample)
            if problems:
                raise ValueError("; ".join(problems))
            if sample.problem_id in seen:
                if not rename_duplicates:
                    raise ValueError(f"duplicate problem_id {sample.problem_id!r}")
                new_id = sample.problem_id
                while new_id in seen:
                    seen[sample.problem_id] += 1
                    new_id = f"{sample.problem_id}#{seen[sample.problem_id]}"
                report.notes.append(f"{where}: duplicate problem_id {sample.problem_id!r} renamed to {new_id!r}")
                sample.problem_id = new_id
            if check_media and sample.path and sample.data_type in ("video", "image"):
                if sample.path not in media_cache:
                    check = check_video if sample.data_type == "video" else check_image
                    media_cache[sample.path] = check(sample.path)
                if media_cache[sample.path]:
                    raise ValueError(media_cache[sample.path])
        except ValueError as e:
            if strict:
                raise DataError(f"{where}: {e}") from None
            report.errors.append(f"{where}: {e}")
            continue
        seen[sample.problem_id] += 1
        report.samples.append(sample)
    return report


def validate_file(path: str | Path, *, strict: bool = False, check_videos: bool = False,
                  root: str | Path | None = None) -> DataReport:
    """All checks on a JSONL (or JSON list) file; bad rows are listed as ``file:line: why``.
    With ``strict`` the first bad row raises :class:`DataError`."""
    path = Path(path)
    report = DataReport(path=path)
    return scan_rows(read_rows(path), report, Path(root) if root else path.parent, strict=strict,
                     check_media=check_videos)


def convert_video_r1(in_path: str | Path, out_path: str | Path, *, video_root: str | Path | None = None,
                     data_types: tuple[str, ...] | None = None, strict: bool = False,
                     check_videos: bool = False) -> DataReport:
    """Convert a Video-R1 JSON (or JSONL) file to our JSONL; returns the report (bad rows set aside).

    ``data_types`` keeps only those (e.g. ``("video",)``); rows of other types are counted in the notes.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    report = DataReport(path=in_path)
    rows = [(w, normalise_video_r1_row(r) if isinstance(r, dict) else r) for w, r in read_rows(in_path)]
    if data_types:
        kept = [(w, r) for w, r in rows if not isinstance(r, dict) or r.get("data_type") in data_types]
        if len(kept) != len(rows):
            report.notes.append(f"{len(rows) - len(kept)} rows of other data types than {list(data_types)} left out")
        rows = kept
    base = Path(video_root) if video_root else in_path.parent
    scan_rows(rows, report, base, strict=strict, check_media=check_videos, rename_duplicates=True)
    write_samples(out_path, report.samples, relative_to=out_path.parent)
    return report
