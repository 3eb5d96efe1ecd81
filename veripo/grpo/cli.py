"""``veripo grpo``: run the GRPO stage from a YAML config (+ dotted overrides)."""
from __future__ import annotations

import json

from veripo.cli import add_config_arguments, config_from_args
from veripo.grpo.config import GRPOConfig

HELP = """GRPO stage: sample G rollouts per video question, reward them (accuracy per problem type + format),
turn rewards into advantages (any estimator in veripo.algos), update the policy. Every rollout goes to
OUT_DIR/rollouts.jsonl before it is trained on; checkpoints every run.save_every steps.

  veripo grpo -c grpo.yaml model.path=ckpt data.train_file=train.jsonl run.out_dir=runs/g1
  veripo grpo -c grpo.yaml --resume          # continue a killed run; nothing repeated or lost"""


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in run.out_dir")


def run(args) -> int:
    cfg = config_from_args(args, GRPOConfig)
    if cfg is None:
        return 0
    from veripo.grpo.trainer import GRPOTrainer

    trainer = GRPOTrainer(cfg)
    main_rank = trainer.train_engine.is_main
    if main_rank:
        for err in trainer.data_errors:
            print(f"bad row skipped: {err}")
    summary = trainer.train(resume=args.resume)
    if main_rank:
        print(json.dumps(summary, indent=2))
    return 0
