"""Profile one GRPO step of the TRL benchmark's setting (issue 19, item 1): where do generate and update spend?

    .venv/bin/python scripts/profile_grpo_step.py [--video] [--steps 3] [--top 25] [key=value ...]

The same tiny kit, rows and settings as ``scripts/bench_grpo_vs_trl.py`` (8 prompts x G 8 x 40 tokens, micro-batch
16, beta 0, ``dapo``); ``--video`` uses the synthetic video rows instead of the text-only copy. Steps 1..N-1 warm up;
step N runs under ``torch.profiler`` (operators by self CPU time) and ``cProfile`` (Python functions by cumulative
time inside the step's phases). Extra ``key=value`` settings are GRPOConfig overrides, to profile a variant.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", action="store_true", help="profile the video step (default: the text-only rows)")
    ap.add_argument("--steps", type=int, default=3, help="the last one is profiled")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", action="store_true", help="operators grouped by input shape too")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    import torch
    from bench_grpo_vs_trl import prepare
    import veripo  # noqa: F401
    from veripo.config import load_config
    from veripo.grpo.config import GRPOConfig
    from veripo.grpo.trainer import GRPOTrainer

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="profile_grpo_"))
    paths = prepare(work, 64)
    cfg = load_config(GRPOConfig, None, [
        f"model.path={paths['kit']}", "model.device=cpu",
        f"data.train_file={paths['video_file' if args.video else 'text_file']}",
        "rollout.prompts_per_step=8", "rollout.group_size=8", "rollout.max_new_tokens=40", "rollout.batch_size=8",
        "rollout.temperature=1.0", "algo.beta=0.0", "algo.loss_agg_mode=dapo", "optim.micro_batch_size=16",
        "optim.lr=1e-6", f"run.steps={args.steps}", "run.save_every=0", "run.tensorboard=false",
        f"run.out_dir={work / 'run'}", *args.overrides])
    trainer = GRPOTrainer(cfg)
    inner = trainer.step
    report: dict[str, str] = {}

    def step(n, replayed=None):
        if n < args.steps - 1:  # steps count from 0: the last one is profiled
            return inner(n, replayed)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=args.shapes) as tp:
            prof.enable()
            out = inner(n, replayed)
            prof.disable()
        report["wall"] = f"{time.perf_counter() - t0:.3f} s under the profilers"
        report["ops"] = tp.key_averages(group_by_input_shape=args.shapes).table(sort_by="self_cpu_time_total",
                                                                                row_limit=args.top)
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(args.top)
        report["python"] = buf.getvalue()
        report["phases"] = ", ".join(f"{k} {v:.3f} s" for k, v in out.items() if k.startswith("time/"))
        return out

    trainer.step = step
    trainer.train()
    print(f"profiled step {args.steps} ({'video' if args.video else 'text'}): {report['wall']}; {report['phases']}")
    print(report["ops"])
    print(report["python"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
