"""Run a model on a benchmark: batched generation, resumable, every prediction on disk as it comes.

    result = run_eval(settings, engine, out_dir)

``engine`` is anything with ``generate(samples, n=1, temperature=0.0, max_new_tokens=256) ->
list[list[Completion]]`` (``Completion.text``, ``.token_ids``, ``.finish_reason``) — the project's
``veripo.rollout.hf_engine.HFEngine`` (or the vLLM engine on GPU). It is a parameter so a run can be tested
with any engine. The prompt mode is set through ``engine.reasoning`` (HFEngine) or ``generate(reasoning=)``.

Files in ``out_dir``:

``settings.json``     what was run: benchmark, annotation file, model, prompt mode, sampling, frame count / fps /
                      pixel budget, frame transform. A rerun with different generation settings is refused.
``predictions.jsonl`` one line per answered question: the benchmark's own row + ``response`` +
                      ``veripo_question`` (the prompt text) + ``veripo_meta``; appended (fsynced) per batch, so a
                      killed run keeps everything answered so far and a rerun skips those rows.
``scores.jsonl``      the per-item scores; ``results.json``: overall + per-task scores, reasoning metrics, counts
                      of rows set aside (bad rows, missing/corrupt videos, generation failures) with the reasons.
``clips/<transform>/`` the perturbed clips when a frame transform is set (robustness runs).

``settings.match`` picks the scoring rule of the headline numbers (``strict``, ``lenient``, or ``official`` =
lmms-eval 0.7.3's scorer, :mod:`veripo.eval.official`); results.json records it as ``match``.

``answer_judge`` (``--judge-url``): an LLM judge for open-ended questions (MMVU). They are then run too, and
scored by the judge apart from the rest (:mod:`veripo.eval.open_ended`: ``open_ended`` accuracy,
``overall_all_questions``; unjudged items named and left out). ``overall`` keeps its meaning either way.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

from veripo.config import doc
from veripo.data.schema import Sample
from veripo.errors import VeripoError
from veripo.eval.benchmarks import BenchmarkAdapter, get_adapter, read_records
from veripo.eval.official import check_match, official_scorer
from veripo.eval.open_ended import open_ended_summary, score_predictions
from veripo.eval.predictions import MAX_LISTED_ERRORS
from veripo.eval.reasoning_metrics import JudgeFn, reasoning_metrics
from veripo.eval.robustness import FrameTransform, parse_frame_transform, transform_clip
from veripo.io_utils import JsonlAppender, atomic_write_json, atomic_write_text, repair_torn_tail
from veripo.prompts import question_text
from veripo.rollout.engine import capabilities

# settings that change what the model is asked or sees: a resumed run must use the same ones
GENERATION_KEYS = ("benchmark", "annotations", "model", "prompt", "max_new_tokens", "temperature", "fps",
                   "num_frames", "min_frames", "max_frames", "min_pixels", "max_pixels", "frame_transform", "seed",
                   "repetition_penalty")


@dataclasses.dataclass
class EvalSettings:
    """One benchmark run (``veripo eval run``); recorded in settings.json and results.json."""

    benchmark: str = doc("Benchmark name (veripo eval list).", "")
    annotations: str = doc("The benchmark's annotation file or folder, as released.", "")
    video_dir: str | None = doc("Folder holding the benchmark's videos (layout: veripo eval list).", None)
    model: str | None = doc("Model path or id (recorded; loading is done by the caller).", None)
    prompt: str = doc("'reasoning' (<think>/<answer> prompt) or 'direct' (answer only).", "reasoning")
    match: str = doc("Scoring rule of the headline numbers: 'strict' (VerIPO's letter rule), 'lenient' (the one "
                     "letter the answer commits to) or 'official' (lmms-eval 0.7.3's scorer of the benchmark).",
                     "strict")
    batch_size: int = doc("Questions per generate call.", 8)
    max_new_tokens: int = doc("Generation budget per answer.", 1024)
    temperature: float = doc("Sampling temperature (0 = greedy).", 0.0)
    repetition_penalty: float = doc("Penalty on repeated tokens (1.0 = off; VerIPO's evaluation uses 1.05).", 1.0)
    fps: float | None = doc("Frames per second sampled from each video.", 2.0)
    num_frames: int | None = doc("Fixed frame count (overrides fps).", None)
    min_frames: int = doc("Fewest frames when sampling by fps.", 4)
    max_frames: int = doc("Most frames per video.", 32)
    min_pixels: int | None = doc("Per-frame minimum pixels.", 128 * 28 * 28)
    max_pixels: int | None = doc("Per-frame pixel budget (VerIPO eval 256*28*28, Video-R1 128*28*28).", 128 * 28 * 28)
    frame_transform: str = doc("Robustness perturbation applied to clips: none | drop:P | stride:K.", "none")
    seed: int = doc("Seed of the frame-drop pattern.", 0)
    limit: int | None = doc("Only the first N questions (smoke runs).", None)

    def video_sampling_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("fps", "num_frames", "min_frames", "max_frames", "min_pixels",
                                                 "max_pixels")}


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:150]


def _check_resume(out_dir: Path, settings: EvalSettings) -> None:
    path = out_dir / "settings.json"
    new = dataclasses.asdict(settings)
    if path.exists():
        old = json.loads(path.read_text())
        defaults = dataclasses.asdict(EvalSettings())  # a key an older run did not record had its default
        old = {k: old.get(k, defaults.get(k)) for k in GENERATION_KEYS}
        diff = [k for k in GENERATION_KEYS if old.get(k) != new.get(k)]
        if diff:
            raise VeripoError(f"{out_dir} holds a run with different settings ({', '.join(diff)}: "
                              f"{[old.get(k) for k in diff]} -> {[new.get(k) for k in diff]}); use another --out")
    atomic_write_json(path, new)


def _done_ids(pred_path: Path) -> set[str]:
    if not pred_path.exists():
        return set()
    done = set()
    for _, rec in read_records(pred_path):
        if isinstance(rec, dict):
            sid = (rec.get("veripo_meta") or {}).get("sample_id")
            if sid:
                done.add(sid)
    return done


def _generate(engine: Any, samples: list[Sample], settings: EvalSettings) -> list[Any]:
    kwargs: dict[str, Any] = dict(n=1, temperature=settings.temperature, max_new_tokens=settings.max_new_tokens)
    if settings.repetition_penalty != 1.0:  # engines that take full sampling parameters
        if not capabilities(engine).sampling_params:
            raise VeripoError(f"repetition_penalty={settings.repetition_penalty}: this engine's generate() takes no "
                              "sampling parameters (params=SamplingParams)")
        from veripo.generation.types import SamplingParams

        kwargs["params"] = SamplingParams(temperature=settings.temperature, max_new_tokens=settings.max_new_tokens,
                                          repetition_penalty=settings.repetition_penalty)
    outs = engine.generate(samples, **kwargs)
    if len(outs) != len(samples) or any(not o for o in outs):
        raise VeripoError(f"engine returned {len(outs)} answer lists for {len(samples)} questions")
    return [o[0] for o in outs]


def _set_prompt_mode(engine: Any, reasoning: bool) -> None:
    """Engines with prompt modes read ``engine.reasoning``; the others always use the reasoning prompt."""
    if capabilities(engine).prompt_modes:
        engine.reasoning = reasoning
    elif not reasoning:
        raise VeripoError(f"{type(engine).__name__} always uses the reasoning prompt; --prompt direct needs an "
                          "engine with prompt modes (the hf or vllm engine)")


def prepare_samples(adapter: BenchmarkAdapter, settings: EvalSettings, out_dir: Path, errors: list[str]
                    ) -> list[tuple[Sample, dict[str, Any]]]:
    """Rows -> (Sample with a resolved (maybe perturbed) video, published row); bad rows/videos go to errors."""
    transform = parse_frame_transform(settings.frame_transform, settings.seed)
    rows = adapter.read_rows(settings.annotations, errors)
    if settings.limit is not None:
        rows = rows[: settings.limit]
    video_dir = settings.video_dir or str(Path(settings.annotations).parent)
    out = []
    for where, row in rows:
        try:
            sample = adapter.to_sample(row, video_dir)
        except (ValueError, FileNotFoundError) as e:
            errors.append(f"{where}: {e}")
            continue
        if transform is not None:
            try:
                sample.path = str(_perturbed_clip(sample, transform, out_dir))
            except VeripoError as e:
                errors.append(f"{where}: {e}")
                continue
        out.append((sample, row))
    return out


def _perturbed_clip(sample: Sample, transform: FrameTransform, out_dir: Path) -> Path:
    dst = out_dir / "clips" / _safe(transform.spec) / f"{_safe(sample.problem_id)}.mp4"
    if not dst.exists():
        transform_clip(sample.path, dst, transform, clip_id=sample.problem_id)
    return dst


def run_eval(settings: EvalSettings, engine: Any, out_dir: str | Path, judge_fn: JudgeFn | None | str = "default",
             log: Callable[[str], None] = print, answer_judge: Any = None) -> dict[str, Any]:
    """Generate answers for every not-yet-answered question, then score everything in predictions.jsonl.
    ``answer_judge`` (:func:`veripo.eval.answer_judge.build_answer_judge`) also runs and judges the
    benchmark's open-ended questions."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter = get_adapter(settings.benchmark)
    check_match(adapter, settings.match)
    if answer_judge is not None and not (settings.match == "official" and official_scorer(adapter.name).judged):
        adapter = adapter.with_open_ended()
    if settings.prompt not in ("reasoning", "direct"):
        raise VeripoError(f"prompt must be 'reasoning' or 'direct', got {settings.prompt!r}")
    _set_prompt_mode(engine, settings.prompt == "reasoning")
    _check_resume(out_dir, settings)
    errors: list[str] = []
    pending = prepare_samples(adapter, settings, out_dir, errors)
    pred_path = out_dir / "predictions.jsonl"
    repair_torn_tail(pred_path)  # a last row a kill left without its newline is answered again, not counted done
    done = _done_ids(pred_path)
    todo = [(s, r) for s, r in pending if s.problem_id not in done]
    log(f"{adapter.name}: {len(pending)} questions ready, {len(pending) - len(todo)} already answered, "
        f"{len(todo)} to go, {len(errors)} set aside")
    started = time.time()
    answered = 0
    with JsonlAppender(pred_path) as sink:
        for i in range(0, len(todo), settings.batch_size):
            batch = todo[i: i + settings.batch_size]
            t0 = time.time()
            try:
                completions = _generate(engine, [s for s, _ in batch], settings)
            except Exception as e:  # one bad clip must not lose the batch: retry one by one
                log(f"batch {i // settings.batch_size}: {type(e).__name__}: {e}; retrying one by one")
                completions = []
                for s, _ in batch:
                    try:
                        completions.append(_generate(engine, [s], settings)[0])
                    except Exception as e1:
                        errors.append(f"{s.problem_id} ({s.path}): generation failed: {type(e1).__name__}: {e1}")
                        completions.append(None)
            elapsed = (time.time() - t0) / max(1, len(batch))
            rows = [_prediction_row(s, r, c, settings, elapsed) for (s, r), c in zip(batch, completions) if c is not None]
            sink.write_many(rows)
            answered += len(rows)
    gen_s = time.time() - started
    result, items = score_predictions(adapter, pred_path, settings.match, answer_judge, log)
    predictions = [rec for _, rec in read_records(pred_path) if isinstance(rec, dict)]
    result["reasoning"] = reasoning_metrics(predictions, judge_fn)
    result["settings"] = dataclasses.asdict(settings)
    result["engine"] = type(engine).__name__
    result["counts"] = {"questions_ready": len(pending), "answered_before": len(pending) - len(todo),
                        "answered_this_run": answered, "set_aside": len(errors)}
    result["set_aside"] = errors[:MAX_LISTED_ERRORS]
    result["generation_seconds"] = round(gen_s, 3)
    atomic_write_text(out_dir / "scores.jsonl", "".join(json.dumps(it.to_dict()) + "\n" for it in items))
    atomic_write_json(out_dir / "results.json", result)
    log(f"{adapter.name}: overall {result['overall']:.4f} ({settings.match}) over {result['n_scored']} questions; "
        f"results in {out_dir / 'results.json'}")
    if "open_ended" in result:
        log(open_ended_summary(result))
    return result


def _prediction_row(sample: Sample, row: dict[str, Any], completion: Any, settings: EvalSettings,
                    seconds: float) -> dict[str, Any]:
    token_ids = getattr(completion, "token_ids", None)
    rec = {k: v for k, v in row.items() if not k.startswith("_base")}
    rec["response"] = str(getattr(completion, "text", completion))
    rec["veripo_question"] = question_text(sample, reasoning=settings.prompt == "reasoning")
    rec["veripo_meta"] = {
        "sample_id": sample.problem_id,
        "video": sample.path,
        "finish_reason": getattr(completion, "finish_reason", None),
        "completion_tokens": len(token_ids) if token_ids is not None else None,
        "seconds": round(seconds, 4),
    }
    return rec
