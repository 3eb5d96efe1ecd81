"""Benchmark: our GRPO step vs TRL 1.16's ``GRPOTrainer`` on the same tiny model, plus our video GRPO step.

    python scripts/bench_grpo_vs_trl.py [--steps 6] [--prompts 8] [--group 8] [--tokens 40] [--json out.json]

Three runs, each in its own subprocess (so peak RSS is per run, not cumulative):

* ``ours-text``  veripo ``GRPOTrainer`` on text-only rows (TRL's GRPO cannot feed video tensors);
* ``trl-text``   TRL ``GRPOTrainer`` on the same rows, model, P prompts x G rollouts x T tokens, beta = 0 (no
                 reference model), loss_type "dapo" (both defaults), micro-batch 16 with gradient accumulation up
                 to the P*G batch, the same reward function (``veripo.rewards.compute_rewards``), the vision
                 placeholder tokens suppressed in generation as ours does, gradient checkpointing off;
* ``ours-video`` veripo ``GRPOTrainer`` on the synthetic video task (8-frame 56x56 clips), with the
                 generate / score / update split read back from the run's ``metrics.jsonl``.

Seconds per step are the median wall time of steps 2..N (step 1 is warm-up; the median, because on a shared
2-core machine another process can stall any single step), with the fastest step and the mean beside it; peak RSS is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the run's process. Completion lengths are reported because a
step's cost scales with them (an untrained tiny model rarely stops early, so both sides run close to T tokens).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = ("ours-text", "trl-text", "ours-video", "ours-unshared-text")
UNSHARED = ("optim.share_prompts=false",)  # the "unshared" run: every row runs prompt + completion, as TRL does


# ----------------------------------------------------------------------------------------------- setup
def prepare(work: Path, n_rows: int, clip: dict | None = None, kit_spec=None) -> dict[str, str]:
    """Synthetic task (videos + rows), a text-only copy of the rows, and a tiny kit whose tokenizer knows the task.
    ``clip``: SynthSpec fields of the videos (``frames``, ``size``); ``kit_spec``: a TinyModelSpec (default one)."""
    import veripo  # noqa: F401  (torchvision shim)
    from veripo.data.synthetic import SynthSpec, generate_task, task_corpus
    from veripo.models import build_tiny_kit

    spec = SynthSpec(n_train=n_rows, n_val=2, n_test=2, types=("color",), **(clip or {}))
    files = generate_task(work / "task", spec, progress=False)
    kit = build_tiny_kit(work / "kit", spec=kit_spec, corpus=task_corpus(spec))
    text_rows = []
    for line in files.splits["train"].read_text().splitlines():
        row = json.loads(line)
        row.pop("path", None)
        row["data_type"] = "text"
        text_rows.append(json.dumps(row))
    text_file = work / "train_text.jsonl"
    text_file.write_text("\n".join(text_rows) + "\n")
    return {"kit": str(kit), "video_file": str(files.splits["train"]), "text_file": str(text_file)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ----------------------------------------------------------------------------------------------- workers
def run_ours(args, data_file: str, out_dir: Path, overrides: tuple[str, ...] = ()) -> dict:
    """Our GRPO run on ``data_file``; ``overrides``: extra config settings (``video.num_frames=16``, ...)."""
    import veripo  # noqa: F401
    import torch

    torch.set_num_threads(getattr(args, "threads", 2))
    from veripo.config import load_config
    from veripo.grpo.config import GRPOConfig
    from veripo.grpo.trainer import GRPOTrainer

    t0 = time.perf_counter()
    cfg = load_config(GRPOConfig, None, [
        f"model.path={args.kit}", "model.device=cpu", f"data.train_file={data_file}",
        f"rollout.prompts_per_step={args.prompts}", f"rollout.group_size={args.group}",
        f"rollout.max_new_tokens={args.tokens}", f"rollout.batch_size={args.prompts}", "rollout.temperature=1.0",
        "algo.beta=0.0", "algo.loss_agg_mode=dapo", "optim.micro_batch_size=16", "optim.lr=1e-6",
        f"run.steps={args.steps}", "run.save_every=0", "run.tensorboard=false", f"run.out_dir={out_dir}",
        *overrides,
    ])
    trainer = GRPOTrainer(cfg)
    init_s = time.perf_counter() - t0
    step_times: list[float] = []
    inner = trainer.step

    def timed_step(step, replayed=None):
        t = time.perf_counter()
        out = inner(step, replayed)
        step_times.append(time.perf_counter() - t)
        return out

    trainer.step = timed_step
    trainer.train()
    metrics = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    measured = metrics[1:] or metrics

    def agg(key: str, fn=statistics.median) -> float:
        vals = [m[key] for m in measured if key in m]
        return fn(vals) if vals else float("nan")

    return {"init_s": init_s, "step_s": step_times, "mean_len": agg("response_length", statistics.fmean),
            "generate_s": agg("time/generate_s"), "score_s": agg("time/score_s"), "update_s": agg("time/update_s")}


def run_trl(args, data_file: str, out_dir: Path) -> dict:
    import veripo  # noqa: F401
    import torch

    torch.set_num_threads(2)
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer as TRLTrainer

    from veripo.data.schema import Sample
    from veripo.models.load import load_policy
    from veripo.prompts import question_text
    from veripo.rewards import compute_rewards
    from veripo.generation.hf import suppressed_token_ids

    t0 = time.perf_counter()
    model, processor = load_policy(args.kit, device="cpu")
    tok = processor.tokenizer
    rows = [json.loads(line) for line in Path(data_file).read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": question_text(Sample.from_dict(r))}],
                                  "row": json.dumps(r)}
                                 for r in rows])
    def reward_total(completions, row, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        samples = [Sample.from_dict(json.loads(r)) for r in row]
        return compute_rewards(texts, samples)["total"]

    step_ends: list[float] = []
    lengths: list[float] = []
    trl_clock: list[float] = []  # TRL's own "step_time" metric, for comparison with our wall clock

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            step_ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "completions/mean_length" in logs:
                lengths.append(float(logs["completions/mean_length"]))
            if logs and "step_time" in logs:
                trl_clock.append(float(logs["step_time"]))

    micro = 16
    config = TRLConfig(
        output_dir=str(out_dir), use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
        per_device_train_batch_size=micro, gradient_accumulation_steps=args.prompts * args.group // micro,
        num_generations=args.group, max_completion_length=args.tokens, max_steps=args.steps, beta=0.0,
        loss_type="dapo", temperature=1.0, learning_rate=1e-6, gradient_checkpointing=False, seed=0,
        generation_kwargs={"suppress_tokens": suppressed_token_ids(tok)}, disable_tqdm=True,
    )
    trainer = TRLTrainer(model=model, reward_funcs=[reward_total], args=config, train_dataset=dataset,
                         processing_class=tok, callbacks=[Clock()])
    init_s = time.perf_counter() - t0
    start = time.perf_counter()
    trainer.train()
    marks = [start] + step_ends
    step_times = [b - a for a, b in zip(marks, marks[1:])]
    return {"init_s": init_s, "step_s": step_times, "mean_len": statistics.fmean(lengths[1:] or lengths),
            "trl_step_time_s": trl_clock}


def worker(args, run_ours, run_trl) -> None:
    """The worker process (``--worker NAME``): run ``run_trl`` or ``run_ours`` on the text or video rows and print
    its result, with the process's peak RSS, as one ``RESULT {json}`` line."""
    import veripo  # noqa: F401  (the torchvision shim, before transformers)

    out_dir = Path(args.work) / f"run-{args.worker}"
    data = args.text_file if args.worker.endswith("text") else args.video_file
    if args.worker.startswith("trl"):
        result = run_trl(args, data, out_dir)
    else:
        result = run_ours(args, data, out_dir, UNSHARED if "unshared" in args.worker else ())
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------- driver
def run_worker(script: str, name: str, args, paths: dict[str, str], extra: list[str]) -> dict:
    """Run ``script --worker name`` in a fresh process (so peak RSS is per run) on the shared task and kit; its
    ``RESULT`` line as a dict, with ``process_wall_s``."""
    cmd = [sys.executable, script, "--worker", name, "--work", args.work, "--kit", paths["kit"],
           "--text-file", paths["text_file"], "--video-file", paths["video_file"], "--steps", str(args.steps),
           *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(getattr(args, "threads", 2)))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_wall_s"] = wall
    return result


def step_stats(seconds: list[float]) -> dict[str, float]:
    """Median (robust to other processes stealing the 2 cores), fastest and mean seconds per step."""
    return {"s_per_step": statistics.median(seconds), "s_per_step_min": min(seconds),
            "s_per_step_mean": statistics.fmean(seconds)}


def spawn(name: str, args, paths: dict[str, str]) -> dict:
    result = run_worker(__file__, name, args, paths, ["--prompts", str(args.prompts), "--group", str(args.group),
                                                      "--tokens", str(args.tokens)])
    result.update(step_stats(result["step_s"][1:] or result["step_s"]))  # step 1 is warm-up
    return result


def report(results: dict[str, dict], args) -> str:
    ours, trl, video = results["ours-text"], results["trl-text"], results["ours-video"]
    shape = f"{args.prompts} prompts x {args.group} rollouts x {args.tokens} tokens"
    lines = [
        f"GRPO step, text-only, {shape}, beta=0, steps 2..{args.steps}",
        f"{'run':12s} {'median s':>9s} {'min s':>7s} {'mean s':>7s} {'mean len':>9s} {'peak RSS MB':>12s} "
        f"{'init s':>7s} {'process s':>10s}",
    ]
    for name in ("ours-text", "trl-text", "ours-unshared-text"):
        r = results[name]
        lines.append(f"{name:12s} {r['s_per_step']:9.3f} {r['s_per_step_min']:7.3f} {r['s_per_step_mean']:7.3f} "
                     f"{r['mean_len']:9.1f} {r['peak_rss_mb']:12.0f} {r['init_s']:7.2f} {r['process_wall_s']:10.1f}")
    lines.append(f"ratio TRL / ours: median {trl['s_per_step'] / ours['s_per_step']:.2f}x, "
                 f"fastest step {trl['s_per_step_min'] / ours['s_per_step_min']:.2f}x")
    plain = results["ours-unshared-text"]
    lines.append(f"shared prompts: median {plain['s_per_step'] / ours['s_per_step']:.2f}x faster than unshared; "
                 f"update {plain['update_s']:.3f} -> {ours['update_s']:.3f} s, generate {plain['generate_s']:.3f} -> "
                 f"{ours['generate_s']:.3f} s")
    lines += [
        "",
        f"Video GRPO step (ours), {shape}, 8-frame 56x56 clips, steps 2..{args.steps}",
        f"  median {video['s_per_step']:.3f} s/step (min {video['s_per_step_min']:.3f}, mean "
        f"{video['s_per_step_mean']:.3f}); median split from metrics.jsonl: generate {video['generate_s']:.3f} + "
        f"score {video['score_s']:.4f} + update {video['update_s']:.3f} s (+ store/bookkeeping)",
        f"  mean len {video['mean_len']:.1f}  peak RSS {video['peak_rss_mb']:.0f} MB  init {video['init_s']:.2f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="GRPO steps per run (the first is warm-up)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8, help="G, rollouts per prompt")
    ap.add_argument("--tokens", type=int, default=40, help="max new tokens per rollout")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    ap.add_argument("--worker", choices=RUNS, help=argparse.SUPPRESS)
    for name in ("--kit", "--text-file", "--video-file"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args, run_ours, run_trl)
        return 0
    if args.prompts * args.group % 16:
        ap.error("prompts x group must be a multiple of 16 (the micro-batch size)")
    with tempfile.TemporaryDirectory(prefix="veripo-bench-") as tmp:
        args.work = args.work or tmp
        Path(args.work).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        paths = prepare(Path(args.work), n_rows=max(2 * args.prompts, 16))
        print(f"setup (task + kit): {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()}", flush=True)
        results = {}
        for name in RUNS:
            results[name] = spawn(name, args, paths)
            print(f"{name}: {results[name]['s_per_step']:.3f} s/step", flush=True)
        print()
        print(report(results, args))
        print(f"\nload average after: {os.getloadavg()}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
