"""Filters (DAPO overlong shaping, dynamic sampling) and rollout controllers (GDRO, XRPO, ARRoL): spec worked
numbers, edge cases, and state_dict round trips (a resumed run continues exactly)."""
import copy
import math

import pytest
import torch

from veripo.algos import (
    bin_mean_losses,
    dynamic_sampling_mask,
    integer_allocation,
    overlong_penalty,
    sqrt_law_allocation,
    student_t_quantile,
    valid_binary_group_mask,
)
from veripo.rollout.control_state import DifficultyTracker, PromptGDRO, RolloutGDRO, XRPOAllocator
from veripo.rollout.prune_state import ARRoLPruner


def approx_list(values, abs=1e-6):
    return pytest.approx(list(values), abs=abs)


# ---------------------------------------------------------------- A1 DAPO filters

def test_overlong_penalty_worked_example():
    lengths = torch.tensor([10000, 16384, 17408, 18432, 20480])
    assert overlong_penalty(lengths, 20480, 4096).tolist() == approx_list([0.0, 0.0, -0.25, -0.5, -1.0])
    assert overlong_penalty(torch.tensor([20480]), 20480, 4096, penalty_factor=0.5).item() == -0.5
    with pytest.raises(ValueError):
        overlong_penalty(lengths, 100, 200)


def test_dynamic_sampling_keeps_groups_with_spread_and_singletons():
    rewards = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0.7])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3])
    keep = dynamic_sampling_mask(rewards, groups)
    assert keep.tolist() == [False] * 8 + [True] * 5
    assert not dynamic_sampling_mask(torch.ones(4), torch.zeros(4, dtype=torch.long)).any()   # all filtered


def test_valid_binary_group_mask_for_drpo():
    keep = valid_binary_group_mask(torch.tensor([1.0, 0, 1, 1, 0.5, 0]), torch.tensor([0, 0, 1, 1, 2, 2]))
    assert keep.tolist() == [True, True, False, False, False, False]   # 0.5 is neither 1 nor 0


# ---------------------------------------------------------------- A7 GDRO

def test_prompt_gdro_errata_worked_example():
    gdro = PromptGDRO(num_bins=3)
    losses = torch.tensor([0.2, 0.5, 0.9])
    gdro.update(losses)
    assert gdro.scores.tolist() == approx_list([0.024, 0.06, 0.108])
    assert gdro.weights.tolist() == approx_list([1.015722, 1.039770, 1.072723])
    assert gdro.probs.tolist() == approx_list([0.324783, 0.332394, 0.342823])
    assert gdro.advantage_multipliers(torch.tensor([2, 0])).tolist() == approx_list([1.072723, 1.015722])
    for _ in range(19):
        gdro.update(losses)
    assert gdro.scores.tolist() == approx_list([0.184487, 0.461219, 0.830193])
    assert gdro.weights.tolist() == approx_list([1.127403, 1.349578, 1.715365])
    assert gdro.probs.tolist() == approx_list([0.269564, 0.322029, 0.408408])


def test_prompt_gdro_absent_bins_cap_and_resume():
    gdro = PromptGDRO(num_bins=3, weight_max=1.05)
    means, present = bin_mean_losses(torch.tensor([1.0, 3.0, 0.5]), torch.tensor([0, 0, 2]), 3)
    assert means.tolist() == [2.0, 0.0, 0.5] and present.tolist() == [True, False, True]
    gdro.update(means, present)
    assert gdro.scores[1] == 0                                       # no prompt from bin 1: unchanged
    assert gdro.advantage_multipliers(torch.tensor([0])).item() == pytest.approx(1.05)   # capped at w_max
    resumed = PromptGDRO(num_bins=1)
    resumed.load_state_dict(copy.deepcopy(gdro.state_dict()))
    gdro.update(torch.tensor([0.3, 0.3, 0.3]))
    resumed.update(torch.tensor([0.3, 0.3, 0.3]))
    assert torch.equal(gdro.probs, resumed.probs)
    draws = gdro.sample_bins(64, torch.Generator().manual_seed(0))
    assert draws.shape == (64,) and draws.max() < 3


def test_rollout_gdro_sqrt_law_worked_examples():
    v = torch.tensor([0.0475, 0.25, 0.16], dtype=torch.float64)
    n = sqrt_law_allocation(v, torch.tensor([0.5, 0.3, 0.2]), 4)
    assert n.tolist() == approx_list([2.571831, 5.900184, 4.720147])
    assert float((torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64) * n).sum()) == pytest.approx(4.0)
    assert float(v[0] / n[0] ** 2) == pytest.approx(0.0071814, abs=1e-7)     # the equivalent shadow price
    p = torch.tensor([0.95, 0.5, 0.2], dtype=torch.float64)
    equal = sqrt_law_allocation(p * (1 - p), torch.full((3,), 1 / 3), 8)
    assert (equal * 3 / 3).tolist() == approx_list([4.678834, 10.733981, 8.587185])
    rg = RolloutGDRO(num_bins=3, price=0.1)
    assert rg.update_price(4.6) == pytest.approx(0.13)


def test_rollout_gdro_integer_allocation_is_budget_neutral():
    rg = RolloutGDRO(num_bins=3, mean_budget=4, n_min=2, n_max=12, ema=1.0)
    rg.update(torch.tensor([0, 1, 2]), torch.tensor([0.95, 0.5, 0.0]))
    bins = torch.tensor([0, 1, 1, 2, 2, 0, 1])
    counts = rg.allocate(bins)
    assert int(counts.sum()) == 4 * 7 and counts.min() >= 2 and counts.max() <= 12
    assert counts[3] == 2 and counts[4] == 2                    # v = 0 bins get n_min
    assert counts[1] >= counts[0]                               # more variance, more rollouts
    assert integer_allocation(torch.zeros(3), 12, 2, 12).tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="budget"):
        integer_allocation(torch.ones(3), 5, 2, 12)
    resumed = RolloutGDRO(num_bins=1)
    resumed.load_state_dict(rg.state_dict())
    assert torch.equal(resumed.allocate(bins), counts)


def test_difficulty_tracker_window_bins_hysteresis_and_resume():
    tracker = DifficultyTracker(edges=(0.1, 0.2, 0.4, 0.6, 0.8, 0.9), window=4, hysteresis=0.03)
    for outcome in [1, 1, 1, 1]:
        tracker.update(["easy", "hard"], [outcome, 0])
    assert tracker.pass_at_k("easy") == 1.0 and tracker.pass_at_k("hard") == 0.0
    assert tracker.bins(["easy", "hard", "unseen"]).tolist() == [6, 0, 3]
    tracker.update(["easy"], [0])                                # window: [1, 1, 1, 0] -> 0.75 -> bin 4
    assert tracker.pass_at_k("easy") == 0.75 and tracker.bins(["easy"]).tolist() == [4]
    resumed = DifficultyTracker()
    resumed.load_state_dict(tracker.state_dict())
    for t in (tracker, resumed):
        t.update(["easy", "new"], [0, 1])
    assert tracker.bins(["easy", "hard", "new"]).tolist() == resumed.bins(["easy", "hard", "new"]).tolist()
    assert resumed.pass_at_k("easy") == 0.5                     # window of 4 survived the round trip


def test_difficulty_tracker_hysteresis_holds_bin_near_edge():
    tracker = DifficultyTracker(edges=(0.5,), window=10, hysteresis=0.15)
    tracker.update(["q"] * 10, [1, 1, 1, 1, 1, 1, 0, 0, 0, 0])   # 0.6 -> bin 1
    assert tracker.bins(["q"]).tolist() == [1]
    tracker.update(["q"], [0])                                  # 0.5: still bin 1
    tracker.update(["q"], [0])                                  # 0.4 >= 0.5 - 0.15: held in bin 1
    assert tracker.pass_at_k("q") == pytest.approx(0.4) and tracker.bins(["q"]).tolist() == [1]
    tracker.update(["q"], [0])                                  # 0.3: leaves
    assert tracker.bins(["q"]).tolist() == [0]


# ---------------------------------------------------------------- A6 XRPO allocator

def test_student_t_quantiles_and_half_widths():
    assert student_t_quantile(0.975, 3) == pytest.approx(3.1824463052837078, abs=1e-9)
    assert student_t_quantile(0.975, 4) == pytest.approx(2.7764451051977934, abs=1e-9)
    assert student_t_quantile(0.975, 1) == pytest.approx(12.706204736174, abs=1e-6)
    std = float(torch.tensor([1.0, 0, 0, 1]).std())
    xrpo = XRPOAllocator()
    assert xrpo.half_width(std, 4) == pytest.approx(0.918693, abs=1e-6)
    assert xrpo.half_width(std, 5) == pytest.approx(0.716875, abs=1e-6)
    assert xrpo.priority(std, 4) == pytest.approx(0.201818, abs=1e-6)


def test_xrpo_allocation_prefers_uncertain_prompts():
    xrpo = XRPOAllocator()
    extra = xrpo.allocate([[1, 0, 0, 1], [1, 1, 1, 1], [0, 1], [1]], extra_budget=6)
    assert sum(extra) == 6
    assert extra[1] == 0                    # zero spread: no priority
    assert extra[3] >= 1                    # n < 2 goes first
    assert extra[2] > extra[0]              # fewer samples, wider interval
    resumed = XRPOAllocator()
    resumed.load_state_dict(xrpo.state_dict())
    assert resumed.step == 1


# ---------------------------------------------------------------- A8 ARRoL

def _trusted_pruner():
    pruner = ARRoLPruner(rho=0.5, min_history=8)
    pruner.record([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1], [1, 1, 1, 1, 0, 0, 0, 0])
    return pruner


def test_arrol_worked_example_balanced_subset():
    pruner = _trusted_pruner()
    assert pruner.head_trusted and pruner.auc == 1.0
    p_hat = torch.tensor([0.9, 0.85, 0.8, 0.2, 0.1, 0.05])
    keep = pruner.select(p_hat, 4)
    assert sorted(p_hat[keep].tolist()) == approx_list([0.05, 0.2, 0.85, 0.9])
    assert float(p_hat[keep].mean()) == pytest.approx(0.5)
    greedy = ARRoLPruner(min_history=8, max_subsets=1)
    greedy.record([0.9, 0.1] * 4, [1, 0] * 4)
    kept = greedy.select(p_hat, 4)
    assert int(kept.sum()) == 4 and abs(float(p_hat[kept].mean()) - 0.5) < abs(0.6875 - 0.5)


def test_arrol_falls_back_to_random_and_resumes_identically():
    untrained = ARRoLPruner(min_history=8, seed=3)
    p_hat = torch.tensor([0.9, 0.85, 0.8, 0.2, 0.1, 0.05])
    assert not untrained.head_trusted
    assert int(untrained.select(p_hat, 4).sum()) == 4
    degenerate = _trusted_pruner()
    assert int(degenerate.select(torch.full((6,), 0.99), 4).sum()) == 4
    clone = ARRoLPruner()
    clone.load_state_dict(untrained.state_dict())
    assert torch.equal(untrained.select(p_hat, 3), clone.select(p_hat, 3))
    groups = torch.tensor([0] * 6 + [1] * 6)
    mask = _trusted_pruner().prune(torch.cat([p_hat, p_hat]), groups, 4)
    assert int(mask[:6].sum()) == 4 and int(mask[6:].sum()) == 4
    assert _trusted_pruner().select(p_hat, 10).all()            # fewer rollouts than G: keep all


def test_roc_auc_needs_both_classes():
    from veripo.algos.allocation import roc_auc

    assert roc_auc([0.1, 0.2], [1, 1]) is None
    assert roc_auc([0.1, 0.9, 0.5], [0, 1, 0]) == 1.0
    assert math.isclose(roc_auc([0.5, 0.5], [0, 1]), 0.5)


def test_quality_head_learns_a_separable_outcome_and_round_trips():
    from veripo.algos.allocation import roc_auc
    from veripo.rollout.quality_head import QualityHead

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(200, 16, generator=gen) * torch.linspace(0.5, 3.0, 16)  # unequal scales: standardised
    labels = (feats[:, 3] / 1.2 - feats[:, 7] / 1.8 > 0).float()
    head = QualityHead(history=256)
    assert not head.fitted and head.predict(feats[:4]).tolist() == [0.5] * 4
    head.update(feats[:5], torch.ones(5))
    assert not head.fitted  # one outcome only: nothing to learn yet
    head.update(feats[5:150], labels[5:150])
    assert head.fitted
    held_out = head.predict(feats[150:])
    assert roc_auc(held_out.tolist(), labels[150:].int().tolist()) > 0.95
    again = QualityHead()
    again.load_state_dict(head.state_dict())
    assert torch.equal(again.predict(feats[150:]), held_out)
    head.update(feats[150:], labels[150:])
    assert head.features.shape[0] == 200 and QualityHead(history=50).history == 50
    with pytest.raises(ValueError, match="dimensions"):
        head.update(torch.zeros(2, 3), torch.zeros(2))
