"""Verify a rollouts file: checks + judge per rollout -> verdicts, pairs per group -> pairs.jsonl, stats.

    stats = run_verification("run/grpo/rollouts.jsonl", "run/verify", VerifierConfig())

writes ``verdicts.jsonl``, ``pairs.jsonl`` (:class:`~veripo.records.PairRecord` rows) and
``verify_stats.json`` (written last: its presence with a matching fingerprint means the outputs are
complete, and a rerun returns at once). Verdicts are appended to ``verdicts.partial.jsonl`` batch by
batch, so a killed run resumes without judging the same rollouts again. With ``config.service_url`` the
checks and pairs are computed by a ``veripo serve-verifier`` service instead (same results).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from pathlib import Path
from typing import Any

from veripo.config import to_dict
from veripo.io_utils import (BadRow, JsonlAppender, atomic_write_json, atomic_write_text, iter_jsonl, iter_rows,
                             repair_torn_tail, write_rejects)
from veripo.records import PairRecord, RolloutRecord
from veripo.verifier.checks import check_rollout
from veripo.verifier.config import VerifierConfig
from veripo.verifier.judges import JudgeInput, build_judge
from veripo.verifier.pairs import build_group_pairs, finalize_pairs
from veripo.verifier.verdicts import Verdict, finalize

VERDICTS, PAIRS, STATS, PARTIAL = "verdicts.jsonl", "pairs.jsonl", "verify_stats.json", "verdicts.partial.jsonl"
MAX_RESPONSE_CHARS = 64_000  # a longer rollout response is set aside (the judge prompt would not fit)


def parse_rollout(row: Any) -> RolloutRecord:
    """Validate one rollouts.jsonl row; raises ``ValueError`` saying what is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    rec = RolloutRecord.from_dict(row)
    if not isinstance(rec.response, str):
        raise ValueError("response must be a string")
    return rec


def load_rollouts(path: str | Path, errors: list[str]) -> list[RolloutRecord]:
    """Valid rows of a rollouts.jsonl, read in binary line by line; each bad row (invalid UTF-8, not JSON, a
    response over :data:`MAX_RESPONSE_CHARS`, a duplicate rollout id, ...) is a :class:`BadRow`
    (``file:line: why``, with the raw line for ``rejects.jsonl``) in ``errors``."""
    path = Path(path)
    out: list[RolloutRecord] = []
    seen: set[str] = set()
    for lineno, row, raw in iter_rows(path):
        try:
            if isinstance(row, ValueError):
                raise row
            rec = parse_rollout(row)
            if len(rec.response) > MAX_RESPONSE_CHARS:
                raise ValueError(f"response is {len(rec.response)} characters, over the {MAX_RESPONSE_CHARS}-"
                                 "character limit")
            if rec.rollout_id in seen:
                raise ValueError(f"duplicate rollout_id {rec.rollout_id!r}")
        except (ValueError, TypeError) as e:
            errors.append(BadRow(path, lineno, str(e), raw))
            continue
        seen.add(rec.rollout_id)
        out.append(rec)
    return out


def _load_tokenizer(name: str | None):
    if not name:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


class Verifier:
    """Checks + judge with a content-hash verdict cache (shared by the pipeline and the HTTP service)."""

    def __init__(self, config: VerifierConfig | None = None, judge: Any = None, tokenizer: Any = None,
                 cache_size: int = 100_000):
        self.config = config or VerifierConfig()
        self.judge = judge if judge is not None else build_judge(self.config.judge)
        self.tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(self.config.tokenizer)
        self.prompt_version = getattr(self.judge, "prompt_version", "rule")
        c = self.config
        self.salt = json.dumps([self.judge.name, self.prompt_version, to_dict(c.repetition), c.accuracy_reward,
                                c.correct_threshold, c.tokenizer], sort_keys=True)
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.judge_seconds = 0.0
        self.judge_calls = 0

    def verify(self, records: list[RolloutRecord]) -> list[Verdict]:
        verdicts = [check_rollout(r, self.config, self.tokenizer, self.salt) for r in records]
        todo: list[int] = []
        with self._lock:
            for i, v in enumerate(verdicts):
                hit = self._cache.get(v.content_hash)
                if hit is None:
                    todo.append(i)
                    continue
                self._cache.move_to_end(v.content_hash)
                self.cache_hits += 1
                for k in ("consistency", "judge", "judge_detail", "judge_attempts", "judge_fallback"):
                    setattr(v, k, hit[k])
        items = [JudgeInput.from_rollout(records[i].response, records[i].sample) for i in todo]
        results = self.judge.judge_many(items) if items else []
        for i, res in zip(todo, results):
            v = verdicts[i]
            v.consistency, v.judge, v.judge_detail = res.verdict, res.judge, res.detail
            v.judge_attempts, v.judge_latency_s, v.judge_fallback = res.attempts, round(res.latency_s, 6), res.fallback
            with self._lock:
                self.judge_seconds += res.latency_s
                self.judge_calls += 1
                if res.verdict != "unjudged":  # a failure is retried next time, not cached
                    self._cache[v.content_hash] = {k: getattr(v, k) for k in (
                        "consistency", "judge", "judge_detail", "judge_attempts", "judge_fallback")}
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return [finalize(v, self.config.pairs.accept_unknown) for v in verdicts]

    def pairs_for_group(self, records: list[RolloutRecord], verdicts: list[Verdict]) -> tuple[list[PairRecord], str | None]:
        return build_group_pairs(records, {v.rollout_id: v for v in verdicts}, self.config)


def _fingerprint(path: Path, config: VerifierConfig) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    cfg = to_dict(config)
    for k in ("service_url", "service_token_env", "service_timeout_s", "service_concurrency", "service_retries",
              "service_backoff_s", "batch_size"):
        cfg.pop(k, None)
    h.update(json.dumps(cfg, sort_keys=True).encode())
    return h.hexdigest()[:32]


def _groups(records: list[RolloutRecord]) -> dict[str, list[RolloutRecord]]:
    groups: dict[str, list[RolloutRecord]] = defaultdict(list)
    for r in records:
        groups[r.group_id].append(r)
    return groups


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rollout", disable=not enabled)


def run_verification(rollouts_path: str | Path, out_dir: str | Path, config: VerifierConfig | None = None, *,
                     verifier: Verifier | None = None, progress: bool = True) -> dict[str, Any]:
    """Verify ``rollouts_path`` into ``out_dir``; returns the stats dict (also ``out_dir/verify_stats.json``)."""
    config = config or (verifier.config if verifier else VerifierConfig())
    rollouts_path, out = Path(rollouts_path), Path(out_dir)
    from veripo.errors import DataError

    if not rollouts_path.exists():
        raise DataError(f"rollouts file not found: {rollouts_path}")
    out.mkdir(parents=True, exist_ok=True)
    fp = _fingerprint(rollouts_path, config)
    stats_path = out / STATS
    if stats_path.exists() and (out / VERDICTS).exists() and (out / PAIRS).exists():
        try:
            old = json.loads(stats_path.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("fingerprint") == fp:
            old["skipped_complete"] = True
            return old

    t0 = time.perf_counter()
    errors: list[str] = []
    records = load_rollouts(rollouts_path, errors)
    if config.service_url:
        from veripo.verifier.client import VerifierClient

        backend: Any = VerifierClient(config.service_url, token_env=config.service_token_env,
                                      timeout_s=config.service_timeout_s, retries=config.service_retries,
                                      backoff_s=config.service_backoff_s, concurrency=config.service_concurrency)
        mode = "service"
    else:
        backend = verifier or Verifier(config)
        mode = "in-process"

    # resume: verdicts of an interrupted run with the same fingerprint
    partial, fp_file = out / PARTIAL, out / ".verify_fingerprint"
    done: dict[str, Verdict] = {}
    if partial.exists() and fp_file.exists() and fp_file.read_text().strip() == fp:
        repair_torn_tail(partial)  # a verdict a kill left half-written (or without its newline) is judged again
        for row in iter_jsonl(partial, errors=[]):
            try:
                v = Verdict.from_dict(row)
            except (TypeError, ValueError):  # a damaged partial line: that rollout is judged again
                continue
            if v.consistency != "unjudged":
                done[v.rollout_id] = v
    else:
        partial.unlink(missing_ok=True)
    atomic_write_text(fp_file, fp + "\n")
    resumed = len(done)
    todo = [r for r in records if r.rollout_id not in done]
    with JsonlAppender(partial) as app, _progress(len(records), "verify", progress) as bar:
        bar.update(resumed)
        for i in range(0, len(todo), max(1, config.batch_size)):
            batch = todo[i:i + config.batch_size]
            verdicts = backend.verify(batch)
            app.write_many([v.to_dict() for v in verdicts])
            done.update((v.rollout_id, v) for v in verdicts)
            bar.update(len(batch))
    ordered = [done[r.rollout_id] for r in records]

    all_pairs: list[PairRecord] = []
    skipped: Counter = Counter()
    for gid, recs in sorted(_groups(records).items()):
        pairs, why = backend.pairs_for_group(recs, [done[r.rollout_id] for r in recs])
        all_pairs.extend(pairs)
        if why:
            skipped[why] += 1
    pairs, pair_stats = finalize_pairs(all_pairs, config)

    atomic_write_text(out / VERDICTS, "".join(json.dumps(v.to_dict(), ensure_ascii=False) + "\n" for v in ordered))
    atomic_write_text(out / PAIRS, "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in pairs))
    stats = summarize(ordered, errors, pairs, pair_stats, skipped)
    stats.update(rollouts_file=str(rollouts_path), out_dir=str(out), fingerprint=fp, mode=mode,
                 judge=_judge_names(ordered), resumed_verdicts=resumed,
                 elapsed_s=round(time.perf_counter() - t0, 3), groups=len(_groups(records)))
    write_rejects(out, errors)
    atomic_write_json(stats_path, stats)
    partial.unlink(missing_ok=True)
    return stats


def _judge_names(verdicts: list[Verdict]) -> dict[str, int]:
    return dict(Counter(v.judge for v in verdicts))


def judge_failures(verdicts: list[Verdict]) -> dict[str, int]:
    """Failed judge calls by kind (the error class, ``unparseable verdict``, ...), whether the rollout was then
    left unjudged or judged by the rule fallback; empty when the judge never failed."""
    kinds: Counter = Counter()
    for v in verdicts:
        if v.consistency != "unjudged" and not v.judge_fallback:
            continue
        detail = v.judge_detail.split("after ", 1)[-1]
        _, _, last = detail.partition(" attempts: ")
        kind = (last or detail).split(":", 1)[0].strip() or "unknown error"
        kinds[kind[:60]] += 1
    return dict(kinds)


def summarize(verdicts: list[Verdict], errors: list[str], pairs: list[PairRecord], pair_stats: dict[str, Any],
              skipped: Counter) -> dict[str, Any]:
    cons = Counter(v.consistency for v in verdicts)
    reasons: Counter = Counter(r for v in verdicts for r in v.reasons)
    return {
        "rollouts": len(verdicts),
        "malformed": len(errors), "malformed_rows": errors[:200],
        "judged": len(verdicts) - cons["unjudged"], "unjudged": cons["unjudged"],
        "consistent": cons["consistent"], "inconsistent": cons["inconsistent"], "unknown": cons["unknown"],
        "judge_fallbacks": sum(v.judge_fallback for v in verdicts),
        "judge_failures": judge_failures(verdicts),
        "repetitive": sum(v.repetitive for v in verdicts), "bad_format": sum(not v.format_ok for v in verdicts),
        "correct": sum(v.correct for v in verdicts), "good": sum(v.good for v in verdicts),
        "mean_think_tokens": round(sum(v.think_tokens for v in verdicts) / max(1, len(verdicts)), 3),
        "inconsistency_rate": round(cons["inconsistent"] / max(1, len(verdicts) - cons["unjudged"]), 6),
        "rejection_reasons": dict(reasons),
        "pairs": {**{k: pair_stats["per_kind"].get(k, 0) for k in ("quality", "reflective", "single")},
                  "total": len(pairs)},
        "pairs_per_problem_type": pair_stats["per_problem_type"],
        "duplicates_dropped": pair_stats["duplicates_dropped"],
        "dropped_for_balance": pair_stats["dropped_for_balance"],
        "groups_skipped": dict(skipped),
    }
