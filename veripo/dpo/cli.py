"""``veripo dpo``: train on pairs.jsonl with any preference loss (or a weighted mix)."""
from __future__ import annotations

from veripo.cli import add_stage_arguments, run_stage
from veripo.dpo.config import DPOConfig

HELP = """DPO stage: train the policy on the verifier's chosen/rejected pairs (videos and all) with any
preference loss from veripo.algos by name, or several with weights, plus an optional NLL term on the chosen
response. Reference log-probs are computed once and cached in OUT_DIR/ref_logps.pt.

  veripo dpo model.path=runs/grpo/final pairs_file=runs/verify/pairs.jsonl out_dir=runs/dpo
  veripo dpo ... loss.names=[sigmoid,sft] loss.weights=[1.0,0.2]     # RPO-style mix
  veripo dpo ... loss.names=[simpo] loss.beta=2.0 loss.hparams.gamma_beta_ratio=0.5"""


def add_arguments(parser) -> None:
    add_stage_arguments(parser, "out_dir")


def run(args) -> int:
    return run_stage(args, DPOConfig, "veripo.dpo.trainer:DPOTrainer", "bad pair")
