"""veripo.algos: pure tensor functions for the GRPO and DPO stages, each registered under a name.

No model, no I/O, no config objects: tensors in, tensors (and float metrics) out. Formulas, defaults, edge
cases and worked numbers: shared/spec/algorithms.md; each function's docstring gives its formula and paper.

    get_advantage_estimator(name)(rewards, group_ids, **kw) -> AdvantageResult(advantages, keep_mask, metrics)
    get_policy_loss(name)(logps, old_logps, advantages, mask, ref_logps=None, **hp) -> (loss, metrics)
    aggregate_loss(per_token_loss, mask, mode)           # TRL 1.16 grpo / bnpo / dr_grpo / dapo
    get_preference_loss(name)(chosen_logps, rejected_logps, chosen_mask, rejected_mask,
                              ref_chosen_logps=None, ref_rejected_logps=None, **hp) -> losses [B]
    weighted_preference_losses(loss_fn, ..., ld_alpha=, log_sum_sq=)   # TRL's ld_alpha (LD-DPO), use_weighting (WPO)
    filters: overlong_penalty, dynamic_sampling_mask, select_extremes, ...
    Sol-RL: pool_subset_mask (top/bottom-k per prompt), truncated_is_weights (cheap vs full-precision sampler)
    value-based: estimators ppo_gae / pdppo (values=, values2=, response_mask=), gae, clipped_value_loss
    allocation: student_t_quantile, bin_mean_losses, sqrt_law_allocation, integer_allocation, roc_auc (the arithmetic
    of the stateful controllers in veripo.rollout.control_state / prune_state)
"""
from veripo.algos.advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageResult,
    get_advantage_estimator,
    list_advantage_estimators,
    register_advantage_estimator,
)
from veripo.algos.aggregation import AGGREGATION_MODES, aggregate_loss, masked_mean
from veripo.algos.allocation import (
    bin_mean_losses,
    integer_allocation,
    roc_auc,
    sqrt_law_allocation,
    student_t_quantile,
)
from veripo.algos.filters import (
    dynamic_sampling_mask,
    overlong_penalty,
    select_extremes,
    valid_binary_group_mask,
)
from veripo.algos.policy_losses import (
    POLICY_LOSSES,
    drpo_gradient_coefficients,
    get_policy_loss,
    k3_kl,
    list_policy_losses,
    register_policy_loss,
)
from veripo.algos.preference_losses import (
    PREFERENCE_LOSSES,
    MissingReferenceError,
    brain_loss,
    combine_preference_losses,
    get_preference_loss,
    implicit_rewards,
    list_preference_losses,
    loss_needs_reference,
    preference_loss,
    preference_metrics,
    smoothed_preference_prob,
)
from veripo.algos.preference_weighting import length_desensitized_weights, weighted_preference_losses, wpo_weights
from veripo.algos.registry import DuplicateNameError, Registry, UnknownNameError
from veripo.algos.sol_rl import descending_ranks, pool_subset_mask, truncated_is_weights
from veripo.algos.value import clipped_value_loss, gae, outcome_token_rewards

register_preference_loss = preference_loss

__all__ = [
    "DuplicateNameError",
    "Registry",
    "UnknownNameError",
    "ADVANTAGE_ESTIMATORS",
    "AGGREGATION_MODES",
    "AdvantageResult",
    "MissingReferenceError",
    "POLICY_LOSSES",
    "PREFERENCE_LOSSES",
    "aggregate_loss",
    "bin_mean_losses",
    "brain_loss",
    "clipped_value_loss",
    "combine_preference_losses",
    "descending_ranks",
    "drpo_gradient_coefficients",
    "dynamic_sampling_mask",
    "gae",
    "get_advantage_estimator",
    "get_policy_loss",
    "get_preference_loss",
    "implicit_rewards",
    "integer_allocation",
    "roc_auc",
    "k3_kl",
    "length_desensitized_weights",
    "list_advantage_estimators",
    "list_policy_losses",
    "list_preference_losses",
    "loss_needs_reference",
    "masked_mean",
    "outcome_token_rewards",
    "overlong_penalty",
    "pool_subset_mask",
    "preference_loss",
    "preference_metrics",
    "register_advantage_estimator",
    "register_policy_loss",
    "register_preference_loss",
    "select_extremes",
    "smoothed_preference_prob",
    "sqrt_law_allocation",
    "student_t_quantile",
    "truncated_is_weights",
    "valid_binary_group_mask",
    "weighted_preference_losses",
    "wpo_weights",
]
