"""Rewards for GRPO and the verifier: answer extraction, accuracy per problem type, format, length,
user rewards by import path, and weighted combination.

    from veripo.rewards import RewardSpec, compute_rewards
    scores = compute_rewards(responses, samples, RewardSpec(weights={"accuracy": 1.0, "format": 0.5}))
    scores["accuracy"], scores["format"], scores["total"]
"""
from veripo.rewards.accuracy import (CORRECT_THRESHOLD, MRA_THRESHOLDS, accuracy_reward, infer_problem_type, is_correct,
                                     mean_relative_accuracy, score_answer)
from veripo.rewards.answers import (choice_letter, extract_answer, extract_think, gold_answer, option_map,
                                    parse_number, strip_latex)
from veripo.rewards.combine import RewardSpec, compute_rewards
from veripo.rewards.format import format_ok, format_reward
from veripo.rewards.length import count_tokens, length_reward, think_length
from veripo.rewards.registry import REWARD_FUNCTIONS, register_reward, resolve_reward

__all__ = [
    "CORRECT_THRESHOLD", "MRA_THRESHOLDS", "REWARD_FUNCTIONS", "RewardSpec", "accuracy_reward", "choice_letter", "compute_rewards",
    "count_tokens", "extract_answer", "extract_think", "format_ok", "format_reward", "gold_answer",
    "infer_problem_type", "is_correct", "length_reward", "mean_relative_accuracy", "option_map", "parse_number",
    "register_reward", "resolve_reward", "score_answer", "strip_latex", "think_length",
]
