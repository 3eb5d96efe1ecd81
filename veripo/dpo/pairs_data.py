"""Reading pairs.jsonl for the DPO stage: validated PairRecords, a deterministic held-out split, and the
extra per-pair inputs some preference losses need (preference scores for SmPO / BRAIn)."""
from __future__ import annotations

import hashlib
from pathlib import Path

from veripo.data.schema import Sample
from veripo.io_utils import iter_jsonl
from veripo.records import PairRecord


def load_pairs(path: str | Path, errors: list[str]) -> list[tuple[PairRecord, Sample]]:
    """Pairs with their parsed sample; a bad row is reported as ``file:line: why`` and skipped."""
    out = []
    path = Path(path)
    for lineno, row in enumerate(iter_jsonl(path, errors), 1):
        try:
            pair = PairRecord.from_dict(row)
            if not pair.chosen.strip() or not pair.rejected.strip():
                raise ValueError("empty chosen or rejected response")
            if pair.chosen == pair.rejected:
                raise ValueError("chosen and rejected are identical")
            out.append((pair, Sample.from_dict(pair.sample)))
        except (TypeError, ValueError) as e:
            errors.append(f"{path}: pair {row.get('pair_id', f'#{lineno}')}: {e}")
    return out


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
