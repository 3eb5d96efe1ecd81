"""``veripo grpo`` configuration (YAML + dotted overrides; ``veripo grpo --show-config`` lists every field)."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from veripo.config import ConfigError, component_errors, doc, require, require_file
from veripo.grpo.critic import ValueHeadsConfig
from veripo.rewards import RewardSpec
from veripo.rollout.cheap_pool import CheapPoolConfig
from veripo.rollout.engine import ENGINES
from veripo.train.distributed import DistConfig
from veripo.train.optim import OptimConfig
from veripo.train.run_config import RunConfig
from veripo.train.policy_setup import ModelConfig
from veripo.video.sampling import VideoSampling

# what the GRPO update passes to the policy loss besides algo.loss_kwargs (grpo/trainer.py; a test reads the call to
# keep these true): the option -> the config key that sets it, and the inputs computed each step
LOSS_SET_BY = {"clip_low": "algo.clip_low", "clip_high": "algo.clip_high", "dual_clip": "algo.dual_clip",
               "beta": "algo.beta", "loss_agg_mode": "algo.loss_agg_mode", "mode": "algo.loss_agg_mode",
               "max_completion_length": "rollout.max_new_tokens"}
LOSS_COMPUTED = ("logps", "old_logps", "advantages", "mask", "ref_logps", "keep_mask", "num_items_in_batch",
                 "num_rows_in_batch", "num_processes", "grad_accum_steps", "steps_per_generation", "rewards", "group_ids",
                 "is_weights")


@dataclasses.dataclass
class DataConfig:
    train_file: str = doc("JSONL (or Video-R1 JSON) of training rows; see veripo/data/schema.py.", "")
    root: str | None = doc("Folder that relative video paths resolve against (default: the data file's folder).", None)
    strict: bool = doc("Fail on the first bad row instead of reporting and skipping it.", False)
    max_prompt_chars: int = doc("Longest question (with its options) in characters; a longer row is set aside at "
                                "load (a huge prompt would not fit in memory). 0 = no limit.", 32_000)
    max_prompt_tokens: int = doc("Longest prompt in tokens (chat template + question, as the batch builder renders "
                                 "it; the video's tokens are bounded by the video settings); a longer row is set "
                                 "aside at load, named file:line. 0 = no limit.", 16_384)
    max_rows: int | None = doc("Use only the first N rows (quick runs).", None)
    exclude_ids_file: str | None = doc("A text file of problem_ids to skip (the loop drops prompts already solved).", None)

    def check(self, prefix: str = "") -> None:
        require(self.max_rows is None or self.max_rows >= 1, f"{prefix}max_rows", self.max_rows,
                "must be >= 1, or null for every row")
        for key in ("max_prompt_chars", "max_prompt_tokens"):
            require(getattr(self, key) >= 0, f"{prefix}{key}", getattr(self, key), "must be >= 0 (0 = no limit)")

    def check_inputs(self, prefix: str = "") -> None:
        require_file(self.train_file, f"{prefix}train_file", "the JSONL (or Video-R1 JSON) of training rows")
        require_file(self.exclude_ids_file, f"{prefix}exclude_ids_file", "problem_ids to skip", required=False)


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
    cheap_pool: CheapPoolConfig = doc(
        "Sol-RL (veripo/rollout/cheap_pool.py): sample pool_size candidates per prompt with a cheap engine (an int8 "
        "copy of the policy), train on the keep_top best and keep_bottom worst of each prompt, with full-precision "
        "log-probs and a truncated importance weight.", default_factory=CheapPoolConfig)

    @property
    def max_group(self) -> int:
        return self.max_group_size if self.max_group_size is not None else 3 * self.group_size

    def check(self, prefix: str = "") -> None:
        p = prefix
        require(self.engine in ENGINES, f"{p}engine", self.engine, f"must be one of {' | '.join(ENGINES)}")
        for key in ("prompts_per_step", "group_size", "max_new_tokens", "batch_size", "min_group_size",
                    "tree_segment_tokens"):
            require(getattr(self, key) >= 1, f"{p}{key}", getattr(self, key), "must be >= 1")
        require(self.temperature > 0, f"{p}temperature", self.temperature,
                "must be > 0: GRPO samples its rollouts (VerIPO: 1.0) and scores them at this temperature")
        require(0 < self.top_p <= 1, f"{p}top_p", self.top_p, "must be in (0, 1]; 1.0 turns nucleus sampling off")
        require(self.top_k >= 0, f"{p}top_k", self.top_k, "must be >= 0; 0 turns top-k off")
        require(0 < self.vllm_gpu_memory_utilization <= 1, f"{p}vllm_gpu_memory_utilization",
                self.vllm_gpu_memory_utilization, "must be a fraction in (0, 1]")
        require(self.vllm_max_model_len is None or self.vllm_max_model_len > self.max_new_tokens,
                f"{p}vllm_max_model_len", self.vllm_max_model_len,
                f"must exceed {p}max_new_tokens={self.max_new_tokens} (prompt + completion), or be null")
        require(self.max_group_size is None or self.max_group_size >= 1, f"{p}max_group_size", self.max_group_size,
                "must be >= 1, or null for 3 * group_size")


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
    max_num_gen_batches: int = doc(
        "DAPO's refill (with dynamic_sampling; verl max_num_gen_batches): sample up to this many batches of prompts "
        "per step until rollout.prompts_per_step groups have reward spread, and train on those only (the groups "
        "without spread are discarded, not stored; short after the last batch: trains on what it found, with a "
        "warning). 1 = no refill: the groups without spread stay in the step, masked out.", 1)
    loss_kwargs: dict[str, Any] = doc("Extra keyword arguments for the policy loss.", default_factory=dict)
    value_heads: ValueHeadsConfig = doc(
        "The value heads of advantage_estimator ppo_gae (one head) and pdppo (two; veripo/grpo/critic.py): their "
        "optimiser and value loss. Unused by the critic-free estimators.", default_factory=ValueHeadsConfig)

    def check(self, prefix: str = "") -> None:
        from veripo.algos import AGGREGATION_MODES, POLICY_LOSSES, ADVANTAGE_ESTIMATORS
        from veripo.algos.aggregation import AGGREGATION_ALIASES

        p = prefix
        for key, registry in (("advantage_estimator", ADVANTAGE_ESTIMATORS), ("policy_loss", POLICY_LOSSES)):
            name = getattr(self, key)
            require(name in registry, f"{p}{key}", name, f"unknown {registry.kind}; valid names: "
                    f"{', '.join(registry.names(aliases=True))}")
        modes = AGGREGATION_MODES + tuple(AGGREGATION_ALIASES)
        require(self.loss_agg_mode in modes, f"{p}loss_agg_mode", self.loss_agg_mode, f"must be one of {', '.join(modes)}")
        require(0 <= self.clip_low < 1, f"{p}clip_low", self.clip_low, "must be in [0, 1) (PPO: 0.2)")
        require(self.clip_high >= 0, f"{p}clip_high", self.clip_high, "must be >= 0 (DAPO clip-higher: 0.28)")
        require(self.dual_clip is None or self.dual_clip > 1, f"{p}dual_clip", self.dual_clip,
                "must be > 1 (verl clip_ratio_c, e.g. 3.0), or null for off")
        require(self.beta >= 0, f"{p}beta", self.beta, "the KL coefficient must be >= 0 (0 = no reference model)")
        require(self.ppo_epochs >= 1, f"{p}ppo_epochs", self.ppo_epochs, "must be >= 1 (1 = on-policy)")
        require(self.max_num_gen_batches >= 1, f"{p}max_num_gen_batches", self.max_num_gen_batches,
                "must be >= 1 (1 = no refill; DAPO: e.g. 10)")
        require(self.max_num_gen_batches == 1 or self.dynamic_sampling, f"{p}max_num_gen_batches",
                self.max_num_gen_batches, f"refills only with {p}dynamic_sampling=true; set it, or "
                f"{p}max_num_gen_batches=1")


@dataclasses.dataclass
class GRPOConfig:
    model: ModelConfig = doc("The policy.", default_factory=ModelConfig)
    data: DataConfig = doc("Training rows.", default_factory=DataConfig)
    video: VideoSampling = doc("Frame sampling and pixel budget.", default_factory=VideoSampling)
    rollout: RolloutConfig = doc("Sampling G rollouts per prompt.", default_factory=RolloutConfig)
    reward: RewardSpec = doc("Reward components and weights.", default_factory=RewardSpec)
    algo: AlgoConfig = doc("Advantage estimator, filters and policy loss.", default_factory=AlgoConfig)
    optim: OptimConfig = doc("Optimiser and schedule.", default_factory=lambda: OptimConfig(lr=1e-6))
    run: RunConfig = doc("Run directory (rollouts.jsonl, metrics.jsonl, checkpoints/, final/), steps, checkpoints.",
                         default_factory=lambda: RunConfig(out_dir="runs/grpo", steps=60, save_every=20))
    dist: DistConfig = doc("Multi-GPU: none | ddp | deepspeed (scripts/launch_multi_gpu.sh). Each process samples its "
                           "share of a step's prompts: rollout.prompts_per_step must be a multiple of the number of "
                           "processes. Controllers and ARRoL pruning observe every rank's outcomes, so their state is "
                           "the same on all ranks; a controller chooses the step's prompts once, then each rank "
                           "samples its share.",
                           default_factory=DistConfig)

    def check(self, prefix: str = "") -> None:
        """The rules that span sections: the algorithm's keyword options, group sizes, controllers, trees."""
        from veripo.algos import get_advantage_estimator, get_policy_loss
        from veripo.grpo.advantage_step import COMPUTED_INPUTS, TREE_OPTIONS, accepts, probe_estimator
        from veripo.options import check_options

        p, ro, algo = prefix, self.rollout, self.algo
        estimator = get_advantage_estimator(algo.advantage_estimator)
        tree_estimator = accepts(estimator, "parent_ids")
        check_options(algo.advantage_kwargs, [estimator], f"{p}algo.advantage_kwargs", computed=COMPUTED_INPUTS,
                      extra=TREE_OPTIONS if tree_estimator else ())
        check_options(algo.loss_kwargs, [get_policy_loss(algo.policy_loss)], f"{p}algo.loss_kwargs",
                      computed=LOSS_COMPUTED, set_by={k: p + v for k, v in LOSS_SET_BY.items()})
        components = len(self.reward.weights) if algo.decoupled_rewards else 0
        if not tree_estimator:
            try:
                probe_estimator(estimator, algo.advantage_kwargs, [2, 2], components)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{p}algo.advantage_kwargs={algo.advantage_kwargs!r}: the "
                                  f"{algo.advantage_estimator} estimator rejects them: {e}") from None
        if ro.group_size == 1 and ro.controller == "none":
            zero = tree_estimator or not probe_estimator(estimator, algo.advantage_kwargs, [1, 1],
                                                         components).advantages.abs().any()
            require(not zero, f"{p}rollout.group_size", 1,
                    f"with one rollout per prompt every {algo.advantage_estimator} advantage is 0 (a group is its own "
                    f"baseline), so nothing is learned; set {p}rollout.group_size >= 2 (VerIPO: 8)")
        with component_errors(p):  # built once with no rows: their constructors check their own options
            from veripo.rollout.control import build_controller
            from veripo.rollout.prune import build_pruner

            build_controller(ro.controller, [], ro.group_size, ro.min_group_size, ro.max_group, 0, ro.controller_kwargs)
            build_pruner(ro.prune, 0, ro.prune_kwargs)
            if ro.tree_branches:
                from veripo.rollout.tree import TreeShape

                TreeShape(tuple(int(b) for b in ro.tree_branches), int(ro.tree_segment_tokens)).check(
                    ro.max_new_tokens, ro.group_size)
        require(algo.max_num_gen_batches == 1 or ro.prune == "none", f"{p}rollout.prune", ro.prune,
                f"is not supported with {p}algo.max_num_gen_batches > 1 (the refill rounds would mix the pruning "
                "metrics); use one or the other")
        for key, value in (("rollout.controller", ro.controller), ("rollout.prune", ro.prune)):
            require(not ro.tree_branches or value == "none", f"{p}{key}", value,
                    f"is not supported with {p}rollout.tree_branches (a tree fixes its own number of leaves); use "
                    "one or the other")
        self._check_cheap_pool(p)

    def _check_cheap_pool(self, p: str) -> None:
        """Sol-RL's pool: sized against the group, on an engine that can sample a copy, with an IS-weighted loss."""
        from veripo.algos import get_policy_loss
        from veripo.grpo.advantage_step import accepts

        ro, pool = self.rollout, self.rollout.cheap_pool
        if not pool.enabled:
            return
        pool.check_against(ro.group_size, f"{p}rollout.cheap_pool.")
        for key, value in (("rollout.controller", ro.controller), ("rollout.prune", ro.prune),
                           ("rollout.tree_branches", ro.tree_branches)):
            require(value in ("none", None), f"{p}{key}", value,
                    f"is not supported with {p}rollout.cheap_pool (the pool fixes the rollouts per prompt); use one "
                    "or the other")
        require(pool.quantize == "none" or ro.engine == "hf", f"{p}rollout.cheap_pool.quantize", pool.quantize,
                f"int8 copies the policy on the CPU and needs {p}rollout.engine=hf; on vllm set quantize: none")
        require(pool.quantize == "none" or accepts(get_policy_loss(self.algo.policy_loss), "is_weights"),
                f"{p}algo.policy_loss", self.algo.policy_loss,
                "takes no importance weights (is_weights), which the int8 pool needs; use ppo_clip")
