"""``veripo grpo`` configuration (YAML + dotted overrides; ``veripo grpo --show-config`` lists every field)."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from veripo.config import doc
from veripo.rewards import RewardSpec
from veripo.train.distributed import DistConfig
from veripo.train.optim import OptimConfig
from veripo.train.policy_setup import ModelConfig
from veripo.video.sampling import VideoSampling


@dataclasses.dataclass
class DataConfig:
    train_file: str = doc("JSONL (or Video-R1 JSON) of training rows; see veripo/data/schema.py.", "")
    root: str | None = doc("Folder that relative video paths resolve against (default: the data file's folder).", None)
    strict: bool = doc("Fail on the first bad row instead of reporting and skipping it.", False)
    max_prompt_chars: int = doc("Longest question (with its options) in characters; a longer row is set aside at "
                                "load (a huge prompt would not fit in memory). 0 = no limit.", 32_000)
    max_rows: int | None = doc("Use only the first N rows (quick runs).", None)
    exclude_ids_file: str | None = doc("A text file of problem_ids to skip (the loop drops prompts already solved).", None)


@dataclasses.dataclass
class RolloutConfig:
    engine: str = doc("hf (transformers generate; CPU and GPU) | vllm (GPU extra).", "hf")
    prompts_per_step: int = doc("Prompts (video questions) per GRPO step.", 8)
    group_size: int = doc("G: rollouts sampled per prompt (VerIPO: 8).", 8)
    temperature: float = doc("Sampling temperature (VerIPO: 1.0; 0.7 works better from a weak warm start).", 1.0)
    top_p: float = doc("Nucleus sampling threshold (1.0 = off).", 1.0)
    top_k: int = doc("Top-k truncation (0 = off).", 0)
    max_new_tokens: int = doc("Completion budget in tokens.", 256)
    batch_size: int = doc("Prompts per generate call.", 8)
    stop_at_answer: bool = doc("Stop a rollout right after </answer>.", True)
    vllm_gpu_memory_utilization: float = doc("vLLM: fraction of GPU memory for the colocated engine.", 0.35)
    vllm_server_url: str | None = doc("vLLM: an OpenAI-compatible vLLM server instead of a colocated engine.", None)
    vllm_max_model_len: int | None = doc("vLLM: longest prompt + completion in tokens (sizes the KV cache); null = the "
                                         "model's maximum, which may not fit the memory share.", None)
    controller: Literal["none", "gdro", "xrpo"] = doc(
        "Control step (veripo/rollout/control.py): none = the default prompts, group_size rollouts each; gdro = "
        "Prompt-GDRO prompt selection over pass@k difficulty bins + Rollout-GDRO square-root allocation; xrpo = "
        "min_group_size rollouts each, then the rest of the budget where the Student-t half-width shrinks most. "
        "Allocation is budget-neutral: prompts_per_step * group_size rollouts per step.", "none")
    controller_kwargs: dict[str, Any] = doc(
        "Options of the controller. gdro: edges, window, hysteresis, unseen_pass_rate (difficulty bins), eta, "
        "gamma, weight_max, ema, score_clip (Prompt-GDRO), rollout_ema, initial_success (Rollout-GDRO), "
        "sample_prompts (true), allocate_rollouts (true), reweight_advantages (false: the paper's Eq 16 "
        "advantage multipliers). xrpo: alpha (0.05), bonus_lambda (0.0).", default_factory=dict)
    min_group_size: int = doc("Fewest rollouts a prompt gets under a controller (>= 2 for GRPO advantages).", 2)
    max_group_size: int | None = doc("Most rollouts a prompt gets under a controller (null = 3 * group_size, GDRO's "
                                     "n_max).", None)
    prune: Literal["none", "arrol"] = doc(
        "arrol: ARRoL pruning (veripo/rollout/prune.py): pool_factor x n rollouts are started, n kept whose "
        "prefix-scored success is balanced around rho (random until the proxy head's AUC is trusted). mode midgen "
        "(the default on the hf engine) prunes the pool after prefix_tokens tokens and finishes only the survivors; "
        "posthoc (the default on vllm) generates the whole pool first. Keeps the training budget.", "none")
    prune_kwargs: dict[str, Any] = doc(
        "arrol options: mode (auto | midgen | posthoc), pool_factor (2.0), prefix_tokens (16), head (proxy: "
        "exp(mean log-prob of the first k tokens) | learned: ARRoL's logistic head on the policy's hidden state, "
        "midgen on hf), head_history (512), trust_head (auto | always | never), rho (0.5), min_auc (0.6), "
        "min_history (32), history, degenerate_margin, max_subsets.", default_factory=dict)
    tree_branches: list[int] | None = doc(
        "Tree rollouts (veripo/rollout/tree.py; hf or colocated vllm engine): children per node at each level, e.g. [2, 2, 2] = 8 "
        "leaves per prompt whose shared prefixes are decoded once; the product must equal group_size. Pair with "
        "algo.advantage_estimator=branch for per-segment, per-depth advantages (each shared segment trained "
        "once). null = independent rollouts.", None)
    tree_segment_tokens: int = doc("Tree rollouts: tokens of each segment before a split (the last level runs to "
                                   "max_new_tokens).", 32)

    @property
    def max_group(self) -> int:
        return self.max_group_size if self.max_group_size is not None else 3 * self.group_size


@dataclasses.dataclass
class AlgoConfig:
    advantage_estimator: str = doc("Name in veripo.algos (grpo, dr_grpo, rloo, mc_grpo, gdpo, gd2po, xrpo, branch...).", "grpo")
    advantage_kwargs: dict[str, Any] = doc("Keyword arguments for the estimator (e.g. {eps: 1e-4}).", default_factory=dict)
    decoupled_rewards: bool = doc("Give the estimator the reward components [N, K] (GDPO, GD2PO) instead of the total.", False)
    policy_loss: str = doc("Name in veripo.algos policy losses: ppo_clip | drpo | awm.", "ppo_clip")
    loss_agg_mode: str = doc("grpo | bnpo | dr_grpo | dapo (TRL's meanings).", "dapo")
    clip_low: float = doc("PPO clip epsilon below 1.", 0.2)
    clip_high: float = doc("PPO clip epsilon above 1 (DAPO clip-higher: 0.28).", 0.28)
    dual_clip: float | None = doc("Dual-clip constant c > 1 for negative advantages (null = off).", None)
    beta: float = doc("k3 KL coefficient to the reference (initial) policy; 0 = no reference model (VerIPO/MM-EUREKA).", 0.0)
    ppo_epochs: int = doc("Optimisation passes over each rollout batch (1 = on-policy, ratio 1).", 1)
    dynamic_sampling: bool = doc("DAPO: mask out groups whose rewards all agree (no learning signal).", False)
    loss_kwargs: dict[str, Any] = doc("Extra keyword arguments for the policy loss.", default_factory=dict)


@dataclasses.dataclass
class RunConfig:
    out_dir: str = doc("Run directory: rollouts.jsonl, metrics.jsonl, checkpoints/, final/.", "runs/grpo")
    steps: int = doc("GRPO steps (one rollout batch and its update each).", 60)
    save_every: int = doc("Checkpoint every N steps (0 = only at the end).", 20)
    keep_last: int = doc("Checkpoints kept on disk.", 2)
    seed: int = doc("Seed for prompt order, sampling and init.", 0)
    tensorboard: bool = doc("Also log to TensorBoard (run_dir/tensorboard).", True)


@dataclasses.dataclass
class GRPOConfig:
    model: ModelConfig = doc("The policy.", default_factory=ModelConfig)
    data: DataConfig = doc("Training rows.", default_factory=DataConfig)
    video: VideoSampling = doc("Frame sampling and pixel budget.", default_factory=VideoSampling)
    rollout: RolloutConfig = doc("Sampling G rollouts per prompt.", default_factory=RolloutConfig)
    reward: RewardSpec = doc("Reward components and weights.", default_factory=RewardSpec)
    algo: AlgoConfig = doc("Advantage estimator, filters and policy loss.", default_factory=AlgoConfig)
    optim: OptimConfig = doc("Optimiser and schedule.", default_factory=lambda: OptimConfig(lr=1e-6))
    run: RunConfig = doc("Run directory, length, checkpoints.", default_factory=RunConfig)
    dist: DistConfig = doc("Multi-GPU: none | ddp | deepspeed (scripts/launch_multi_gpu.sh). Each process samples its "
                           "share of a step's prompts: rollout.prompts_per_step must be a multiple of the number of "
                           "processes. Controllers and ARRoL pruning observe every rank's outcomes, so their state is "
                           "the same on all ranks; a controller chooses the step's prompts once, then each rank "
                           "samples its share.",
                           default_factory=DistConfig)
