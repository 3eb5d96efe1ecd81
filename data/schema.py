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
in ``strict`` mode. Files are read in binary one line at a time, so an invalid UTF-8 byte costs one row.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Callable

from veripo.errors import DataError

PROBLEM_TYPES = ("multiple choice", "numerical", "OCR", "free-form", "regression")
DATA_TYPES = ("video", "image", "text")
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S)
_OPTION_LETTER_RE = re.compile(r"^\s*\(?([A-Z])\s*[.):]")  # "A. x", "A) x", "(A) x", "A: x"
# The longest question (with its options) a row may have: a longer one is set aside at load instead of being
# tokenised into a prompt that would not fit in memory (configurable per call / data.max_prompt_chars).
MAX_PROMPT_CHARS = 32_000


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


def iter_data_rows(path: str | Path) -> list[tuple[str, Any, bytes]]:
    """``(where, row, raw)`` for each row of a JSONL file (``file:line``, read in binary line by line) or a JSON
    list (``file:item N``). A line that cannot be read (invalid UTF-8, not JSON, too long) gives a
    :class:`~veripo.io_utils.RowError` in place of the row; ``raw`` is the line's bytes (for the rejects file)."""
    from veripo.io_utils import iter_rows, max_json_file_bytes

    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.suffix == ".json":
        size, limit = path.stat().st_size, max_json_file_bytes()
        if size > limit:
            raise DataError(f"{path}: {size} bytes, over the {limit}-byte limit for a JSON file (convert it to JSONL, "
                            "or raise VERIPO_MAX_JSON_FILE_BYTES)")
        raw = path.read_bytes()
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[e.start]:02x})") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
        return [(f"{path}:item {i + 1}", row, json.dumps(row, ensure_ascii=False).encode()) for i, row in enumerate(data)]
    return [(f"{path}:{lineno}", row, raw) for lineno, row, raw in iter_rows(path)]


def read_rows(path: str | Path) -> list[tuple[str, Any]]:
    """``(where, row)`` for each row of a JSONL file (``file:line``) or a JSON list (``file:item N``).
    A line that cannot be read gives a ``ValueError`` in place of the row."""
    return [(where, row) for where, row, _ in iter_data_rows(path)]


def _bad_row(where: str, reason: str, raw: bytes):
    from veripo.io_utils import BadRow

    file, _, line = where.rpartition(":")
    if file and line.isdigit():
        return BadRow(file, int(line), reason, raw)
    return BadRow(where, None, reason, raw)  # "file:item 3" (a JSON list) keeps its item number


def load_samples(path: str | Path, strict: bool = False, root: str | Path | None = None,
                 errors: list[str] | None = None, max_prompt_chars: int | None = None,
                 max_prompt_tokens: int = 0, count_prompt_tokens: Callable[[Sample], int] | None = None
                 ) -> list[Sample]:
    """Read a JSONL (or a JSON list, as Video-R1 ships) of rows.

    Bad rows are described as ``file:line: why`` in ``errors`` (:class:`~veripo.io_utils.BadRow` strings,
    carrying the raw line for the rejects file) and skipped; with ``strict`` the first bad row raises
    :class:`DataError`. Bad rows: unreadable lines, schema errors, rows that cannot be scored
    (:func:`scorable_problems`: a multiple-choice answer that is not an option letter, ...), a question (with
    its options) over ``max_prompt_chars`` characters (default :data:`MAX_PROMPT_CHARS`), a prompt over
    ``max_prompt_tokens`` tokens as ``count_prompt_tokens(sample)`` counts them (both given and the limit > 0;
    :func:`veripo.train.prompt_tokens.prompt_token_counter`; checked after the character limit, so a huge
    question is never tokenised), and duplicate ``problem_id`` values.
    """
    path = Path(path)
    base = Path(root) if root else path.parent
    errs: list[str] = [] if errors is None else errors
    limit = MAX_PROMPT_CHARS if max_prompt_chars is None else max_prompt_chars
    samples: list[Sample] = []
    seen: set[str] = set()
    for where, row, raw in iter_data_rows(path):
        try:
            if isinstance(row, ValueError):
                raise row
            sample = Sample.from_dict(row, base)
            problems = scorable_problems(sample)
            if problems:
                raise ValueError("; ".join(problems))
            n = len(sample.problem) + sum(len(o) for o in sample.options)
            if limit and n > limit:
                raise ValueError(f"question and options are {n} characters, over the {limit}-character limit "
                                 "(data.max_prompt_chars)")
            if max_prompt_tokens and count_prompt_tokens is not None:
                tokens = count_prompt_tokens(sample)
                if tokens > max_prompt_tokens:
                    raise ValueError(f"prompt is {tokens} tokens, over the {max_prompt_tokens}-token limit "
                                     "(data.max_prompt_tokens)")
            if sample.problem_id in seen:
                raise ValueError(f"duplicate problem_id {sample.problem_id!r}")
        except ValueError as e:
            if strict:
                raise DataError(f"{where}: {e}") from None
            errs.append(_bad_row(where, str(e), raw))
            continue
        seen.add(sample.problem_id)
        samples.append(sample)
    return samples


def option_letters(options: list[str]) -> tuple[list[str], list[str]]:
    """(the option letters, the options that do not start with one like ``A.``)."""
    letters, bad = [], []
    for opt in options:
        m = _OPTION_LETTER_RE.match(opt)
        (letters.append(m.group(1)) if m else bad.append(opt))
    return letters, bad


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").strip().rstrip(".").strip("$"))
    except ValueError:
        return False
    return True


def scorable_problems(sample: Sample) -> list[str]:
    """Problems that keep a schema-valid row from being scored (empty list: fine): a multiple-choice answer
    that is not one of the option letters, a numerical/regression answer that is not a number, no answer.
    ``veripo data validate`` reports them and every training stage sets such rows aside."""
    problems = []
    answer = sample.answer
    if sample.problem_type == "multiple choice":
        letters, bad = option_letters(sample.options)
        problems += [f"option {opt!r} does not start with a letter like 'A.'" for opt in bad]
        if letters and answer not in letters:
            problems.append(f"answer {answer!r} is not one of the option letters {''.join(letters)}")
    elif sample.problem_type in ("numerical", "regression") and not _is_number(answer):
        problems.append(f"{sample.problem_type} answer {answer!r} is not a number")
    if not answer:
        problems.append("empty answer")
    return problems


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
