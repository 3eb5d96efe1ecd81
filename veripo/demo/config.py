"""The demo's recipe. Defaults follow notes/learning-probe.md (what a 0.6M-parameter Qwen2.5-VL learns in
minutes on 2 CPU cores: the colour of a square, from 8 frames of 56x56 video), with a 24-pixel square: with
the probe's 16 pixels our kit needed 300+ warm-start steps, with 24 about 100. Everything is config, so the
same command scales up: ``veripo demo --config my.yaml`` with a real checkpoint under ``model_path``."""
from __future__ import annotations

import dataclasses
from typing import Any

from veripo.config import doc


@dataclasses.dataclass
class DemoConfig:
    out_dir: str = doc("Run directory (task/, kit/, sft/, loop/, report.md, plots).", "runs/demo")
    seed: int = doc("Seed for data, init, sampling.", 0)
    model_path: str | None = doc("Start from this checkpoint instead of building the tiny model (skips the kit).", None)
    task: dict[str, Any] = doc("SynthSpec fields (veripo data synth --show-config).", default_factory=lambda: {
        "types": ["color"], "n_train": 256, "n_val": 32, "n_test": 64, "square": 24,
        "flawed_inconsistent": 0.10, "flawed_repetitive": 0.05})
    tiny_model: dict[str, Any] = doc("TinyModelSpec fields.", default_factory=dict)
    video: dict[str, Any] = doc("VideoSampling shared by every stage.", default_factory=lambda: {
        "num_frames": 8, "min_pixels": 3136, "max_pixels": 3136})
    sft: dict[str, Any] = doc("SFTConfig fields for the warm start (veripo sft --show-config).", default_factory=lambda: {
        "steps": 400, "batch_size": 16, "optim": {"lr": 1e-3, "warmup_steps": 10},
        "stop": {"eval_every": 5, "min_accuracy": 0.6, "min_class_accuracy": 0.25, "max_new_tokens": 40}})
    loop: dict[str, Any] = doc("LoopConfig fields (veripo loop --show-config).", default_factory=lambda: {
        "iterations": 2, "drop_solved_ratio": 0.8,
        "model": {"freeze_vision": False},
        "grpo": {"rollout": {"prompts_per_step": 8, "group_size": 8, "temperature": 0.7, "max_new_tokens": 40},
                 "optim": {"lr": 1e-4, "schedule": "linear", "micro_batch_size": 64},
                 "run": {"steps": 40, "save_every": 20, "tensorboard": False}},
        # quality pairs only: on the tiny model, reflective chosen responses (a wrong and a right reasoning
        # joined) did not lower the measured inconsistency, while correct-vs-inconsistent pairs did
        "verify": {"judge": {"kind": "rule"}, "pairs": {"kinds": ["quality"], "max_quality_per_prompt": 4}},
        # DPO + NLL on the chosen response (RPO; VerIPO's Fig. 2 "Maximum Likelihood" box): on the tiny model
        # the NLL term is what keeps accuracy while the inconsistency falls (nll_coef 0.1 -> 1.0: sampled
        # inconsistency after DPO 38% -> 8%, sampled accuracy 78% -> 97%)
        "dpo": {"optim": {"lr": 2e-4, "micro_batch_size": 32}, "batch_size": 16, "epochs": 2.0,
                "loss": {"names": ["sigmoid"], "beta": 0.1, "nll_coef": 1.0}, "tensorboard": False},
        "eval": {"max_new_tokens": 40, "batch_size": 32}})
    quick: bool = doc("The under-2-minute variant (tests, CI): fewer rows and steps.", False)


QUICK = {
    "task": {"n_train": 128, "n_val": 16, "n_test": 32},
    "sft": {"steps": 200},
    "loop": {"iterations": 2, "grpo": {"run": {"steps": 12}}, "dpo": {"batch_size": 8}},
}
