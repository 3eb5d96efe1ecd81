"""``veripo eval``: score predictions, run a model on a benchmark, compare checkpoints.

    veripo eval list
    veripo eval score  --benchmark vsibench --predictions preds.jsonl [--out scores.json]
                       [--match strict|lenient|official]     (bad rows -> rejects.jsonl beside --out)
    veripo eval run    --benchmark vsibench --annotations test-00000-of-00001.parquet --video-dir VSI/ \\
                       --model CKPT --out runs/vsi_iter1 [--prompt reasoning|direct] [--fps 2 --max-frames 32 ...]
                       [--frame-transform drop:0.3|stride:2]
    veripo eval report --results runs/iter0 runs/iter1 ... --out report/ [--match official]

--match official scores as lmms-eval 0.7.3 does (veripo.eval.official):

    veripo eval score --benchmark videomme --predictions preds.jsonl --match official

VerIPO's own eval files, scored with VerIPO's calculate_score.py (adapter ``veripo_json``):

    veripo eval run   --benchmark veripo_json --annotations VerIPO/evaluation/json/vsi_bench.json --video-dir DATA/ ...
    veripo eval score --benchmark veripo_json:vsi_bench --predictions preds.jsonl

MMVU's open-ended questions with an LLM judge (any OpenAI-compatible endpoint; reported apart, see
``veripo.eval.open_ended``):

    veripo eval score --benchmark mmvu --predictions preds.jsonl --judge-url http://127.0.0.1:8000/v1 \\
                      --judge-model Qwen2.5-72B-Instruct [--judge-api-key KEY]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from veripo.errors import VeripoError

HELP = "Video benchmark harness: run a model, score predictions, report."
BENCHMARK_HELP = ("benchmark name (veripo eval list); NAME:VARIANT picks one benchmark of a multi-benchmark "
                  "adapter, e.g. veripo_json:vsi_bench (default: inferred from the file name)")


MATCH_CHOICES = ("strict", "lenient", "official")
MATCH_HELP = ("scoring rule of the headline numbers: strict = VerIPO calculate_score.py's letter rule (default; "
              "for comparing with VerIPO's paper), lenient = the one letter the answer commits to, official = "
              "lmms-eval 0.7.3's own scorer of the benchmark (its answer extraction, denominators and rounding; "
              "veripo eval list names it); strict and lenient are always in overall_by_match")

JUDGE_HELP = """\
With --match official on TempCompass, the judge instead scores the replies lmms-eval's rules cannot
read (lmms-eval asks ChatGPT; without a judge they score 0, as lmms-eval scores them with none reachable).
Without --judge-url, open-ended questions are skipped and counted, and every score is as before.
With it, they are run too and each one (question, gold answer, the model's extracted answer) is sent
to the judge, which must reply CORRECT or INCORRECT (prompt: eval/answer_judge_prompt_v1.txt).
Results add open_ended.accuracy (judged items only) and overall_all_questions; 'overall' stays the
multiple-choice score. Garbage replies, timeouts and a dead endpoint are retried (2 retries with
backoff); then the item is 'unjudged': named in a warning, counted in open_ended.n_unjudged and left
out of both figures. The run never stops for the judge."""


def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    """--judge-url / --judge-model / --judge-api-key: the LLM judge for open-ended questions."""
    g = parser.add_argument_group("LLM judge for open-ended questions (MMVU)", JUDGE_HELP)
    g.add_argument("--judge-url", help="base URL of an OpenAI-compatible chat endpoint, with /v1 "
                                       "(vLLM, `veripo serve-judge`, a hosted API), e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--judge-model", default="judge", help="model name sent to the judge endpoint (default: judge)")
    g.add_argument("--judge-api-key", help="API key of the judge endpoint (default: $VERIPO_JUDGE_API_KEY, "
                                           "else none)")


SCORE_EPILOG = """examples:
  veripo eval score --benchmark vsibench --predictions preds.jsonl --out scores.json
  veripo eval score --benchmark veripo_json:vsi_bench --predictions preds.jsonl     # VerIPO calculate_score.py
  veripo eval score --benchmark mmvu --predictions preds.jsonl --judge-url http://127.0.0.1:8000/v1 \\
                    --judge-model Qwen2.5-72B-Instruct                               # + open-ended questions
"""
RUN_EPILOG = """examples:
  veripo eval run --benchmark veripo_json --annotations VerIPO/evaluation/json/vsi_bench.json \\
                  --video-dir DATA/ --model CKPT --out runs/vsi          # videos at DATA/<video_path>
  veripo eval run --benchmark mmvu --annotations validation.json --video-dir MMVU/videos --model CKPT \\
                  --out runs/mmvu --judge-url http://127.0.0.1:8000/v1   # also runs the open-ended questions
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the benchmarks, their annotation files and video layouts")

    sc = sub.add_parser("score", help="score a predictions JSONL (benchmark rows as published + 'response')",
                        epilog=SCORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sc.add_argument("--benchmark", required=True, help=BENCHMARK_HELP)
    sc.add_argument("--predictions", required=True, help="JSONL: one benchmark row + 'response' per line")
    sc.add_argument("--out", help="also write the result JSON here")
    sc.add_argument("--match", choices=MATCH_CHOICES, default="strict", help=MATCH_HELP)
    add_judge_arguments(sc)

    rn = sub.add_parser("run", help="generate answers with a model and score them (resumable)",
                        epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from veripo.eval.runner import EvalSettings

    defaults = EvalSettings()
    rn.add_argument("--benchmark", required=True, help=BENCHMARK_HELP)
    rn.add_argument("--annotations", required=True, help="the benchmark's annotation file/folder as released")
    rn.add_argument("--video-dir", help="folder with the benchmark's videos")
    rn.add_argument("--model", required=True, help="checkpoint folder or model id")
    rn.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    rn.add_argument("--engine", choices=("auto", "hf", "vllm"), default="auto",
                    help="generation engine: auto = vLLM on a GPU when installed, else Hugging Face")
    helps = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(EvalSettings)}
    rn.add_argument("--prompt", choices=("reasoning", "direct"), default=defaults.prompt, help=helps["prompt"])
    rn.add_argument("--match", choices=MATCH_CHOICES, default=defaults.match, help=MATCH_HELP)
    for name, typ in (("batch_size", int), ("max_new_tokens", int), ("temperature", float),
                      ("repetition_penalty", float), ("fps", float),
                      ("num_frames", int), ("min_frames", int), ("max_frames", int), ("min_pixels", int),
                      ("max_pixels", int), ("frame_transform", str), ("seed", int), ("limit", int)):
        rn.add_argument("--" + name.replace("_", "-"), type=typ, default=getattr(defaults, name),
                        help=f"{helps[name]} (default {getattr(defaults, name)})")
    rn.add_argument("--no-judge", action="store_true", help="skip the inconsistency-rate judge")
    add_judge_arguments(rn)

    rp = sub.add_parser("report", help="tables + plot comparing result folders (e.g. one per loop iteration)")
    rp.add_argument("--results", nargs="+", required=True, help="run output folders (or parents of several)")
    rp.add_argument("--out", required=True)
    rp.add_argument("--match", choices=MATCH_CHOICES,
                    help="rescore each run's predictions.jsonl under this rule before reporting (default: the "
                         "numbers each results.json holds, under the rule it was scored with)")


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "score": _score, "run": _run, "report": _report}[args.action](args)


def _list(args) -> int:
    from veripo.eval.benchmarks import benchmark_names, get_adapter

    from veripo.eval.official import SCORERS

    for name in benchmark_names():
        a = get_adapter(name)
        official = SCORERS[name].reference if name in SCORERS else "none (no lmms-eval scorer; use strict or lenient)"
        print(f"{name:12s} {a.title}\n{'':12s}   annotations: {a.annotation_hint}\n{'':12s}   videos: {a.video_hint}"
              f"\n{'':12s}   scorer (strict / lenient): {a.scorer_reference}; overall = {a.aggregation}"
              f"\n{'':12s}   scorer (official): {official}")
    return 0


def answer_judge(args: argparse.Namespace, benchmark: str):
    """The LLM judge for open-ended questions named by --judge-url, or None; refused for a benchmark that
    has no open-ended questions (before any model is loaded)."""
    if not getattr(args, "judge_url", None):
        return None
    from veripo.eval.answer_judge import build_answer_judge
    from veripo.eval.benchmarks import get_adapter
    from veripo.eval.official import SCORERS, check_match

    adapter = get_adapter(benchmark)
    check_match(adapter, getattr(args, "match", "strict"))
    judged_officially = getattr(args, "match", None) == "official" and adapter.name in SCORERS \
        and SCORERS[adapter.name].judged
    if not judged_officially:
        adapter.with_open_ended()
    return build_answer_judge(args.judge_url, model=args.judge_model, api_key=args.judge_api_key)


def _score(args) -> int:
    from veripo.eval.benchmarks import get_adapter
    from veripo.eval.open_ended import open_ended_summary, score_predictions
    from veripo.io_utils import REJECTS_FILE, atomic_write_json

    judge = answer_judge(args, args.benchmark)
    rejects_dir = Path(args.out).parent if args.out else None  # beside the output; never into an input folder
    result, _ = score_predictions(get_adapter(args.benchmark), args.predictions, args.match, judge,
                                  log=lambda msg: print(msg, file=sys.stderr), rejects_dir=rejects_dir)
    if "open_ended" in result:
        print(open_ended_summary(result), file=sys.stderr)
    if "official_judge" in result:
        oj = result["official_judge"]
        print(f"judge {oj['judge']}: {oj['n']} replies lmms-eval's rules could not read: {oj['n_correct']} correct, "
              f"{oj['n_incorrect']} incorrect, {oj['n_unjudged']} unjudged (scored 0)", file=sys.stderr)
    for msg in result["malformed"]:
        print(f"warning: {msg}", file=sys.stderr)
    if result["n_malformed"]:
        where = f"see {rejects_dir / REJECTS_FILE}" if rejects_dir else "--out also writes them to rejects.jsonl"
        print(f"warning: {result['n_malformed']} malformed prediction row(s) set aside: {where}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    if args.out:
        atomic_write_json(args.out, result)
    return 0


def build_engine(model: str, settings, kind: str = "auto"):
    """Load ``model`` and wrap it in the rollout engine ``kind`` names (``auto``: vLLM where CUDA and vLLM are
    present, else the HF engine); the one factory the GRPO stage uses too (veripo/rollout/engine.py)."""
    from veripo.rollout.engine import EngineSpec, build_engine as build_rollout_engine
    from veripo.video.sampling import VideoSampling

    fields = {f.name for f in dataclasses.fields(VideoSampling)}
    sampling = VideoSampling(**{k: v for k, v in settings.video_sampling_kwargs().items() if k in fields})
    return build_rollout_engine(EngineSpec(name=kind, model_path=model, video=sampling,
                                           batch_size=getattr(settings, "batch_size", 8)))


def _run(args) -> int:
    from veripo.eval.runner import EvalSettings, run_eval

    names = {f.name for f in dataclasses.fields(EvalSettings)}
    settings = EvalSettings(**{k: v for k, v in vars(args).items() if k in names})
    from veripo.eval.benchmarks import get_adapter
    from veripo.eval.official import check_match

    check_match(get_adapter(settings.benchmark), settings.match)  # before any model is loaded
    judge = answer_judge(args, settings.benchmark)
    engine = build_engine(args.model, settings, args.engine)
    run_eval(settings, engine, args.out, judge_fn=None if args.no_judge else "default", answer_judge=judge)
    return 0


def _report(args) -> int:
    from veripo.eval.report import write_report

    paths = write_report(args.results, args.out, match=args.match)
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    return 0
