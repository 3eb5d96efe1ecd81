"""``veripo dpo`` configuration (``veripo dpo --show-config`` lists every field)."""
from __future__ import annotations

import dataclasses
from typing import Any

from veripo.config import doc
from veripo.train.optim import OptimConfig
from veripo.train.distributed import DistConfig
from veripo.train.policy_setup import ModelConfig
from veripo.video.sampling import VideoSampling


@dataclasses.dataclass
class LossConfig:
    names: list[str] = doc("Preference loss name(s) from veripo.algos (sigmoid, ipo, hinge, simpo, tgdpo, smpo, ...).",
                           default_factory=lambda: ["sigmoid"])
    weights: list[float] | None = doc("One weight per loss name (TRL's loss_weights); null = all 1.", None)
    beta: float = doc("DPO beta (VerIPO: 0.1).", 0.1)
    hparams: dict[str, Any] = doc("Extra loss hyper-parameters, e.g. {label_smoothing: 0.1, gamma_beta_ratio: 0.5}.",
                                  default_factory=dict)
    nll_coef: float = doc("Weight of an NLL term on the chosen response (Fig. 2's 'Maximum Likelihood'; RPO).", 0.0)
    guidance_model: str | None = doc("TGDPO: checkpoint whose per-token log-ratio to the reference guides the loss.", None)
    ld_alpha: float | None = doc("LD-DPO (TRL's ld_alpha): tokens beyond the shorter response of a pair count alpha "
                                 "times in the policy and reference log-probs (paper: 0.3-0.5); null = off.", None)
    use_weighting: bool = doc("WPO (TRL's use_weighting): weight each pair by exp(mean_t[log p(y_t) - log sum_v "
                              "p(v)^2]) of chosen times rejected, so off-policy pairs count less.", False)


@dataclasses.dataclass
class DPOConfig:
    model: ModelConfig = doc("The policy (also the reference: its log-probs are computed once, before training).",
                             default_factory=ModelConfig)
    pairs_file: str = doc("pairs.jsonl from the verifier.", "")
    strict: bool = doc("Fail on the first bad pair (malformed row, unreadable video) instead of setting it aside.",
                       False)
    video: VideoSampling = doc("Frame sampling.", default_factory=VideoSampling)
    loss: LossConfig = doc("Preference loss(es).", default_factory=LossConfig)
    optim: OptimConfig = doc("Optimiser (VerIPO: lr 5e-7 for 7B).", default_factory=lambda: OptimConfig(lr=5e-7))
    batch_size: int = doc("Pairs per optimiser step (VerIPO: 32).", 32)
    epochs: float = doc("Passes over the training pairs (VerIPO: 1).", 1.0)
    heldout_fraction: float = doc("Pairs held out to measure the chosen-over-rejected margin before/after.", 0.1)
    out_dir: str = doc("Run directory: ref_logps.pt, metrics.jsonl, checkpoints/, final/.", "runs/dpo")
    save_every: int = doc("Checkpoint every N steps (0 = only at the end).", 50)
    keep_last: int = doc("Checkpoints kept.", 2)
    seed: int = doc("Seed.", 0)
    tensorboard: bool = doc("Also log to TensorBoard.", True)
    dist: DistConfig = doc("Multi-GPU: none | ddp | deepspeed (scripts/launch_multi_gpu.sh); batch_size must be a "
                           "multiple of the number of processes.", default_factory=DistConfig)
