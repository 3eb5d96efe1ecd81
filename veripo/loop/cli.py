"""``veripo loop``: the whole VerIPO loop from one YAML, or one stage of it (for the shell pipeline)."""
from __future__ import annotations

from veripo.cli import add_config_arguments, config_from_args
from veripo.loop.config import LoopConfig

HELP = """Iterate GRPO -> Rollout-Aware Verifier -> DPO for `iterations` rounds from one YAML config, each
iteration starting from the last policy, with held-out evaluation after every stage. Killed? Rerun with
--resume: finished stages are skipped and the unfinished one continues from its last checkpoint.

  veripo loop -c loop.yaml                       # all stages
  veripo loop -c loop.yaml --resume              # continue
  veripo loop -c loop.yaml --stage grpo --iteration 1   # one stage (what scripts/pipeline.sh runs)"""


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue a run in run_dir")
    parser.add_argument("--stage", choices=["eval-start", "grpo", "verify", "dpo", "eval-grpo", "eval-dpo"],
                        help="run only this stage (idempotent; needs --iteration except for eval-start)")
    parser.add_argument("--iteration", type=int, default=None, help="iteration of --stage (1-based)")


def run(args) -> int:
    cfg = config_from_args(args, LoopConfig)
    if cfg is None:
        return 0
    from veripo.loop.runner import Manifest, run_loop, summary_table
    from veripo.loop.stages import STAGE_FUNCTIONS, iter_dir, policy_after, run_eval

    if args.stage:
        from pathlib import Path
        import time

        if args.stage != "eval-start" and not args.iteration:
            from veripo.errors import ConfigError

            raise ConfigError(f"--stage {args.stage} needs --iteration N (1-based)")
        t0 = time.perf_counter()
        if args.stage == "eval-start":
            key, summary = "eval-start", run_eval(cfg, policy_after(cfg, 0), Path(cfg.run_dir) / "eval-start")
        elif args.stage.startswith("eval-"):
            trained = args.stage[5:]
            key = f"iter-{args.iteration}/{args.stage}"
            summary = run_eval(cfg, str(iter_dir(cfg, args.iteration) / trained / "final"),
                               iter_dir(cfg, args.iteration) / args.stage)
        else:
            key, summary = f"iter-{args.iteration}/{args.stage}", STAGE_FUNCTIONS[args.stage](cfg, args.iteration)
        from veripo.loop.stages import launched_rank

        manifest = Manifest(Path(cfg.run_dir))
        if launched_rank() == 0 and not manifest.done(key):  # under torchrun, rank 0 alone writes
            manifest.record(key, summary, time.perf_counter() - t0)
        print(f"{key}: done")
        return 0
    manifest = run_loop(cfg, resume=args.resume)
    print(summary_table(manifest))
    return 0
