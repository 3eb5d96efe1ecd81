"""``veripo loop`` configuration: one YAML for all stages, each stage's section overridable per iteration.

    model_path: runs/sft/final
    train_file: data/train.jsonl
    test_file: data/test.jsonl
    iterations: 2
    video: {num_frames: 8, min_pixels: 3136, max_pixels: 3136}   # shared by every stage
    grpo: {rollout: {group_size: 8, temperature: 0.7}, optim: {lr: 2e-4, schedule: linear}, run: {steps: 40}}
    verify: {judge: {kind: rule}}
    dpo: {optim: {lr: 5e-5}, loss: {names: [sigmoid], beta: 0.1}}
    iteration_overrides: {"2": {grpo: {run: {steps: 20}}}}

Sections are checked against the stage configs when the file is loaded (keys and value rules, every iteration), so
a typo or an impossible value fails before any work.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from veripo.config import ConfigError, doc, from_dict, merge, require, require_file


@dataclasses.dataclass
class LoopEvalConfig:
    enabled: bool = doc("Evaluate the held-out split before training and after every stage.", True)
    max_new_tokens: int = doc("Generation budget per held-out answer.", 64)
    batch_size: int = doc("Questions per generate call.", 32)
    limit: int | None = doc("Only the first N held-out questions.", None)
    benchmark: str = doc("Benchmark adapter for test_file (veripo eval list).", "synthetic")
    samples: int = doc("Also score k sampled answers per question (mean accuracy at `temperature`); 0 = greedy only.", 4)
    temperature: float = doc("Sampling temperature of the sampled accuracy (the GRPO rollout temperature).", 0.7)
    seed: int = doc("Seed of the sampled answers (same seed, same table).", 0)

    def check(self, prefix: str = "") -> None:
        for key in ("max_new_tokens", "batch_size"):
            require(getattr(self, key) >= 1, f"{prefix}{key}", getattr(self, key), "must be >= 1")
        require(self.limit is None or self.limit >= 1, f"{prefix}limit", self.limit, "must be >= 1, or null for all")
        require(self.samples >= 0, f"{prefix}samples", self.samples, "must be >= 0 (0 = greedy only)")
        require(self.samples == 0 or self.temperature > 0, f"{prefix}temperature", self.temperature,
                f"sampled answers ({prefix}samples={self.samples}) need a temperature > 0")


@dataclasses.dataclass
class LoopConfig:
    model_path: str = doc("The starting policy (checkpoint directory or hub id).", "")
    train_file: str = doc("Training rows (JSONL, our schema or Video-R1's).", "")
    test_file: str | None = doc("Held-out rows evaluated after every stage (null: no evaluation).", None)
    run_dir: str = doc("Run directory: iter-N/{grpo,verify,dpo,eval-*}/, manifest.json, summary.md.", "runs/loop")
    iterations: int = doc("GRPO -> verify -> DPO iterations (VerIPO shows two).", 2)
    seed: int = doc("Base seed; iteration i uses seed + i.", 0)
    drop_solved_ratio: float = doc("Between iterations, drop this share of prompts whose rollouts were all correct "
                                   "(VerIPO: 0.8).", 0.8)
    video: dict[str, Any] = doc("VideoSampling fields shared by every stage.", default_factory=dict)
    model: dict[str, Any] = doc("ModelConfig fields shared by GRPO and DPO (lora, dtype, freeze_vision...).",
                                default_factory=dict)
    grpo: dict[str, Any] = doc("GRPOConfig fields (veripo grpo --show-config).", default_factory=dict)
    verify: dict[str, Any] = doc("VerifierConfig fields (veripo verify --show-config).", default_factory=dict)
    dpo: dict[str, Any] = doc("DPOConfig fields (veripo dpo --show-config).", default_factory=dict)
    iteration_overrides: dict[str, Any] = doc("Per-iteration overrides: {'2': {grpo: {...}, dpo: {...}}}.",
                                              default_factory=dict)
    eval: LoopEvalConfig = doc("Held-out evaluation between stages.", default_factory=LoopEvalConfig)

    def check_inputs(self, prefix: str = "") -> None:
        require(bool(self.model_path), f"{prefix}model_path", self.model_path, "give the starting policy (a "
                "checkpoint directory or hub id)")
        require_file(self.train_file, f"{prefix}train_file", "the training rows")
        require_file(self.test_file, f"{prefix}test_file", "the held-out rows", required=False)

    def check(self, prefix: str = "") -> None:
        require(self.iterations >= 1, f"{prefix}iterations", self.iterations, "must be >= 1 (VerIPO shows two)")
        require(0 <= self.drop_solved_ratio <= 1, f"{prefix}drop_solved_ratio", self.drop_solved_ratio,
                "must be a share in [0, 1] (VerIPO: 0.8)")
        for it in range(1, self.iterations + 1):  # fail early on a bad section (its keys and its values)
            for stage in ("grpo", "verify", "dpo"):
                try:
                    stage_section(self, stage, it, prefix)
                except ConfigError as e:
                    if stage not in (self.iteration_overrides.get(str(it)) or {}):
                        raise
                    raise ConfigError(f"{e} (iteration {it}: {prefix}iteration_overrides.{it}.{stage} applies)") from None


def stage_section(cfg: LoopConfig, stage: str, iteration: int, prefix: str = "") -> dict[str, Any]:
    """The stage's section for ``iteration``: shared section <- per-iteration override, validated (keys and values)."""
    from veripo.dpo.config import DPOConfig
    from veripo.grpo.config import GRPOConfig
    from veripo.verifier.config import VerifierConfig

    section = merge(getattr(cfg, stage), (cfg.iteration_overrides.get(str(iteration)) or {}).get(stage, {}))
    if stage in ("grpo", "dpo"):
        section = merge({"video": cfg.video, "model": cfg.model}, section)
    cls = {"grpo": GRPOConfig, "verify": VerifierConfig, "dpo": DPOConfig}[stage]
    from_dict(cls, section, prefix=f"{prefix}{stage}.")
    return section
