"""``veripo dpo`` configuration (``veripo dpo --show-config`` lists every field)."""
from __future__ import annotations

import dataclasses
from typing import Any

from veripo import prompt_cache
from veripo.config import ConfigError, doc, require, require_file
from veripo.train.optim import OptimConfig
from veripo.train.distributed import DistConfig
from veripo.train.policy_setup import ModelConfig
from veripo.train.run_config import RunConfig
from veripo.video.sampling import VideoSampling

# what the DPO stage passes to the preference losses besides loss.hparams (dpo/trainer.py pair_losses): options set
# by a field of the loss section of the same name, and the inputs computed from the pairs
HPARAMS_SET_BY = ("beta", "ld_alpha")
HPARAMS_COMPUTED = ("chosen_scores", "rejected_scores", "chosen_token_guidance",
                    "rejected_token_guidance", "logratio_chosen_given_rejected", "logratio_rejected_given_rejected",
                    "logratio_rejected_given_chosen", "logratio_chosen_given_chosen", "log_sum_sq")


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

    def check(self, prefix: str = "") -> None:
        from veripo.algos import PREFERENCE_LOSSES, get_preference_loss
        from veripo.algos.preference_weighting import check_weighting
        from veripo.options import check_options

        p = prefix
        require(bool(self.names), f"{p}names", self.names, "name at least one preference loss, e.g. [sigmoid]")
        for name in self.names:
            require(name in PREFERENCE_LOSSES, f"{p}names", self.names, f"{name!r} is not a preference loss; valid "
                    f"names: {', '.join(PREFERENCE_LOSSES.names(aliases=True))}")
        require(self.weights is None or len(self.weights) == len(self.names), f"{p}weights", self.weights,
                f"give one weight per name in {p}names ({len(self.names)}), or null for all 1")
        require(self.beta > 0, f"{p}beta", self.beta, "DPO's beta must be > 0 (VerIPO: 0.1; SimPO: 2.0)")
        require(self.nll_coef >= 0, f"{p}nll_coef", self.nll_coef, "must be >= 0 (0 = no NLL term)")
        require("tgdpo" not in self.names or bool(self.guidance_model), f"{p}guidance_model", self.guidance_model,
                "tgdpo needs a checkpoint whose per-token log-ratio to the reference guides the loss")
        check_options(self.hparams, [get_preference_loss(n) for n in self.names], f"{p}hparams",
                      computed=HPARAMS_COMPUTED, set_by={k: p + k for k in HPARAMS_SET_BY})
        try:
            check_weighting(list(self.names), self.use_weighting, self.ld_alpha)
        except ValueError as e:
            raise ConfigError(f"{p.rstrip('.')}: {e}" if p else str(e)) from None


@dataclasses.dataclass
class DPOConfig:
    MOVED_KEYS = {k: f"run.{k}" for k in ("out_dir", "save_every", "keep_last", "seed", "tensorboard")}

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
    prompt_cache_mb: int = doc(prompt_cache.CONFIG_DOC + " DPO reads each pair's prompt in the reference pass, "
                               "the held-out margins and every epoch.", prompt_cache.DEFAULT_MB)
    heldout_fraction: float = doc("Pairs held out to measure the chosen-over-rejected margin before/after.", 0.1)
    run: RunConfig = doc("Run directory (ref_logps.pt, metrics.jsonl, checkpoints/, final/), steps (null = from "
                         "epochs), checkpoints, seed.",
                         default_factory=lambda: RunConfig(out_dir="runs/dpo", steps=None, save_every=50))
    dist: DistConfig = doc("Multi-GPU: none | ddp | deepspeed (scripts/launch_multi_gpu.sh); batch_size must be a "
                           "multiple of the number of processes.", default_factory=DistConfig)

    def check(self, prefix: str = "") -> None:
        p = prefix
        require(self.batch_size >= 1, f"{p}batch_size", self.batch_size, "must be >= 1 pair per step (VerIPO: 32)")
        require(self.epochs > 0, f"{p}epochs", self.epochs, "must be > 0 passes over the pairs (VerIPO: 1)")
        require(self.prompt_cache_mb >= 0, f"{p}prompt_cache_mb", self.prompt_cache_mb,
                "must be >= 0 MB (0 = no prompt cache)")
        require(0 <= self.heldout_fraction < 1, f"{p}heldout_fraction", self.heldout_fraction,
                "must be in [0, 1): the share of pairs held out to measure the margin")

    def check_inputs(self, prefix: str = "") -> None:
        require_file(self.pairs_file, f"{prefix}pairs_file", "the verifier's pairs.jsonl")
