"""``veripo grpo``: run the GRPO stage from a YAML config (+ dotted overrides)."""
from __future__ import annotations

from veripo.cli import add_stage_arguments, run_stage
from veripo.grpo.config import GRPOConfig

HELP = """GRPO stage: sample G rollouts per video question, reward them (accuracy per problem type + format),
turn rewards into advantages (any estimator in veripo.algos), update the policy. Every rollout goes to
OUT_DIR/rollouts.jsonl before it is trained on; checkpoints every run.save_every steps.

  veripo grpo -c grpo.yaml model.path=ckpt data.train_file=train.jsonl run.out_dir=runs/g1
  veripo grpo -c grpo.yaml --resume          # continue a killed run; nothing repeated or lost
  veripo grpo ... rollout.tree_branches=[2,2,2] algo.advantage_estimator=branch    # tree rollouts
  veripo grpo ... rollout.prune=arrol        # ARRoL: prune a 2x pool as it generates"""


def add_arguments(parser) -> None:
    add_stage_arguments(parser, "run.out_dir")


def run(args) -> int:
    return run_stage(args, GRPOConfig, "veripo.grpo.trainer:GRPOTrainer", "bad row")
