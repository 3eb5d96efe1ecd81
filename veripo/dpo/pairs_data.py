"""Reading pairs.jsonl for the DPO stage: validated PairRecords, a deterministic held-out split, and the
extra per-pair inputs some preference losses need (preference scores for SmPO / BRAIn).

Every bad row is set aside as a :class:`~veripo.io_utils.BadRow` (``file:line: why``, with its raw line for the
rejects file), never trained on and never stopping the stage (unless ``strict``): a line that is not valid
UTF-8 / JSON, a field of the wrong type (``"chosen": 42``), empty or identical responses, a response over
``max_response_chars`` (default :data:`MAX_RESPONSE_CHARS`) or a question over the data limit, a second row
with a ``pair_id`` already seen (the first is kept), and -- through :func:`readable_pairs` -- a pair whose video
or image cannot be decoded.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from veripo.data.schema import MAX_PROMPT_CHARS, Sample
from veripo.errors import DataError, VideoError
from veripo.io_utils import BadRow, RowError, iter_rows
from veripo.records import PairRecord

MAX_RESPONSE_CHARS = 64_000
_TYPES = {"pair_id": str, "prompt_id": (str, int), "kind": str, "prompt": str, "chosen": str,
          "rejected": str, "provenance": dict}


def parse_pair(row: Any, max_response_chars: int = MAX_RESPONSE_CHARS) -> tuple[PairRecord, Sample]:
    """One pairs.jsonl row -> (pair, its sample); ``ValueError`` saying what is wrong."""
    if isinstance(row, RowError):
        raise row
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    pair = PairRecord.from_dict(row)
    for key, kind in _TYPES.items():
        value = getattr(pair, key)
        if not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ValueError(f"{key!r} must be a {want}, got {type(value).__name__} {str(value)[:40]!r}")
    pair.prompt_id = str(pair.prompt_id)
    if not pair.chosen.strip() or not pair.rejected.strip():
        raise ValueError("empty chosen or rejected response")
    if pair.chosen == pair.rejected:
        raise ValueError("chosen and rejected are identical")
    longest = max(len(pair.chosen), len(pair.rejected))
    if max_response_chars and longest > max_response_chars:
        raise ValueError(f"a response is {longest} characters, over the {max_response_chars}-character limit")
    sample = pair.sample
    n = len(sample.problem) + sum(len(o) for o in sample.options)
    if n > MAX_PROMPT_CHARS:
        raise ValueError(f"question and options are {n} characters, over the {MAX_PROMPT_CHARS}-character limit")
    return pair, sample


def load_pairs(path: str | Path, errors: list[str], strict: bool = False,
               max_response_chars: int = MAX_RESPONSE_CHARS) -> list[tuple[PairRecord, Sample]]:
    """Pairs with their parsed sample; a bad row is reported into ``errors`` and set aside (see the module
    docstring), or raises :class:`DataError` at once under ``strict``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"pairs file not found: {path}")
    out, seen = [], set()
    for lineno, row, raw in iter_rows(path):
        try:
            pair, sample = parse_pair(row, max_response_chars)
            if pair.pair_id in seen:
                raise ValueError(f"duplicate pair_id {pair.pair_id!r} (the first one is kept)")
        except (TypeError, ValueError) as e:
            bad = BadRow(path, lineno, str(e), raw)
            if strict:
                raise DataError(str(bad)) from None
            errors.append(bad)
            continue
        seen.add(pair.pair_id)
        out.append((pair, sample))
    return out


def readable_pairs(pairs: list[tuple[PairRecord, Sample]], cache, sampling, errors: list[str],
                   strict: bool = False) -> list[tuple[PairRecord, Sample]]:
    """The pairs whose video (or image) decodes; each other pair is set aside with the decoder's message.
    Each file is decoded once, through ``cache`` (a :class:`~veripo.video.cache.FrameCache`, which the
    trainer's batches then reuse), so one corrupt video costs its pairs, not the stage."""
    failed: dict[str, str | None] = {}
    out = []
    for pair, sample in pairs:
        path = sample.path
        if sample.data_type in ("video", "image") and path:
            if path not in failed:
                failed[path] = _decode_problem(sample, cache, sampling)
            if failed[path]:
                bad = BadRow(f"pair {pair.pair_id}", None, str(failed[path]),
                             json.dumps(pair.to_dict(), ensure_ascii=False).encode())
                if strict:
                    raise VideoError(str(bad))
                errors.append(bad)
                continue
        out.append((pair, sample))
    return out


def _decode_problem(sample: Sample, cache, sampling) -> str | None:
    try:
        if sample.data_type == "video":
            cache.get(sample.path, sampling)
        else:
            from PIL import Image

            with Image.open(sample.path) as im:
                im.convert("RGB")
    except VideoError as e:
        return str(e)
    except Exception as e:  # PIL / the decoders raise many kinds
        return f"cannot read {sample.data_type} {sample.path}: {type(e).__name__}: {e}"
    return None


def is_heldout(pair_id: str, fraction: float) -> bool:
    """A stable split by hash of the pair id (the same pairs are held out on every run and resume)."""
    if fraction <= 0:
        return False
    h = int(hashlib.sha256(pair_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < fraction


def preference_scores(pair: PairRecord) -> tuple[float, float]:
    """Verifier quality scores of (chosen, rejected) when the pair carries them, else (1, 0)."""
    extra = pair.extra or {}
    prov = pair.provenance or {}
    c = extra.get("chosen_score", prov.get("chosen_score"))
    r = extra.get("rejected_score", prov.get("rejected_score"))
    return (float(c) if c is not None else 1.0, float(r) if r is not None else 0.0)
