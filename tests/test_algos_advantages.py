"""Advantage estimators: the worked numbers of shared/spec/algorithms.md (part A), edge cases, registry, and
loop-vs-vectorised equivalence."""
import math

import numpy as np
import pytest
import torch

from veripo.algos import (
    AdvantageResult,
    DuplicateNameError,
    UnknownNameError,
    get_advantage_estimator,
    list_advantage_estimators,
    register_advantage_estimator,
    select_extremes,
)

R = torch.tensor([1.0, 0, 0, 1, 1])
ONE_GROUP = torch.zeros(5, dtype=torch.long)


def adv(name, rewards, group_ids, **kw) -> AdvantageResult:
    return get_advantage_estimator(name)(torch.as_tensor(rewards, dtype=torch.float64),
                                         torch.as_tensor(group_ids, dtype=torch.long), **kw)


def close(actual, expected, atol=1e-6):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               atol=atol, rtol=0)


# ---------------------------------------------------------------- registry

def test_all_required_names_are_registered():
    assert {"grpo", "dr_grpo", "rloo", "mc_grpo", "gdpo", "gd2po", "xrpo", "branch", "awm"} <= set(
        list_advantage_estimators())


def test_unknown_name_lists_valid_keys():
    with pytest.raises(UnknownNameError) as err:
        get_advantage_estimator("gpro")
    assert "gpro" in str(err.value) and "grpo" in str(err.value) and "rloo" in str(err.value)


def test_duplicate_registration_is_rejected():
    with pytest.raises(DuplicateNameError):
        @register_advantage_estimator("grpo")
        def other(rewards, group_ids, **kw):  # pragma: no cover - never registered
            return None


def test_every_estimator_documents_its_formula_and_paper():
    for name in list_advantage_estimators():
        doc = get_advantage_estimator(name).__doc__ or ""
        assert "arXiv" in doc or "et al." in doc, name
        assert "=" in doc, name


# ---------------------------------------------------------------- spec 0.1 / A1: GRPO baselines

def test_grpo_baseline_vectors_spec_0_1():
    close(adv("grpo", R, ONE_GROUP, eps=1e-6).advantages, [0.730295, -1.095443, -1.095443, 0.730295, 0.730295])
    close(adv("grpo", R, ONE_GROUP).advantages, [0.730163, -1.095245, -1.095245, 0.730163, 0.730163])
    close(adv("grpo", R, ONE_GROUP, unbiased=False).advantages, [0.816330, -1.224495, -1.224495, 0.816330, 0.816330])


def test_grpo_plus_minus_one_rewards_spec_a1():
    rd = torch.tensor([1.0, -1, -1, 1, 1])
    close(adv("grpo", rd, ONE_GROUP, eps=1e-6).advantages, [0.730296, -1.095444, -1.095444, 0.730296, 0.730296])


def test_grpo_edge_cases_singleton_zero_spread_nan():
    r = torch.tensor([1.0, 1.0, 1.0, 0.5, float("nan"), 0.0, 1.0])
    g = torch.tensor([0, 0, 0, 1, 2, 2, 2])
    out = adv("grpo", r, g)
    assert torch.isfinite(out.advantages).all()
    close(out.advantages[:3], [0, 0, 0])          # zero spread -> 0
    assert out.advantages[3] == 0                  # singleton (TRL) -> 0
    assert out.advantages[4] == 0 and not out.keep_mask[4]   # unscored rollout
    close(out.advantages[5:], [-0.5 / (math.sqrt(0.5) + 1e-4), 0.5 / (math.sqrt(0.5) + 1e-4)])  # NaN left out of stats
    assert adv("grpo", r, g, singleton="raw").advantages[3] == 0.5   # verl: mean 0, std 1
    assert out.metrics["zero_std_group_frac"] > 0


def test_multi_component_rewards_are_weighted_sum_then_normalised():
    comps = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    out = adv("grpo", comps, [0, 0, 0, 0], reward_weights=[2.0, 1.0])
    expect = adv("grpo", torch.tensor([2.0, 1.0, 3.0, 0.0]), [0, 0, 0, 0])
    close(out.advantages, expect.advantages)


def test_dr_grpo_and_rloo():
    close(adv("dr_grpo", R, ONE_GROUP).advantages, R - 0.6)
    close(adv("rloo", R, ONE_GROUP).advantages, (R - 0.6) * 5 / 4)
    assert adv("rloo", [3.0], [0]).advantages[0] == 0


def test_batch_scale_uses_batch_std():
    r = torch.tensor([1.0, 0.0, 3.0, 1.0])
    g = torch.tensor([0, 0, 1, 1])
    out = adv("grpo", r, g, scale="batch")
    close(out.advantages, (r - torch.tensor([0.5, 0.5, 2.0, 2.0])) / (r.std() + 1e-4))


# ---------------------------------------------------------------- A2: MC-GRPO

@pytest.mark.parametrize("rewards,rescale,expected,kept", [
    ([1, 0, 0, 1, 1], False, [0, -1000, -1000, 0, 0], [-1000, -1000, 0, 0]),
    ([1, 0, 0, 1, 1], True, [0, -2500, -2500, 0, 0], [-2500, -2500, 0, 0]),
    ([2.0, 0, 1.5, 2.0, 0], False, [0.998004, -2.994012, 0, 0.998004, -2.994012],
     [0.998004, -2.994012, 0.998004, -2.994012]),
    ([2.0, 0, 1.5, 2.0, 0], True, [1.247505, -3.742515, 0, 1.247505, -3.742515],
     [1.247505, -3.742515, 1.247505, -3.742515]),
    ([1, 1, 1, 1, 1], False, [0, 0, 0, 0, 0], [0, 0, 0, 0]),
    ([0, 1, 0], False, [0, 1000, 0], [0, 1000]),
])
def test_mc_grpo_worked_examples(rewards, rescale, expected, kept):
    r = torch.tensor(rewards, dtype=torch.float64)
    out = adv("mc_grpo", r, [0] * len(r), rescale_nonzero=rescale)
    close(out.advantages, expected, atol=1e-5)
    assert int((~out.keep_mask).sum()) == 1
    pivot = int(torch.nonzero(~out.keep_mask))
    median = float(torch.sort(r).values[(len(r) - 1) // 2])
    assert r[pivot] == median                     # the dropped rollout is a median rollout
    close(sorted(out.advantages[out.keep_mask].tolist()), sorted(kept), atol=1e-5)


def test_mc_grpo_even_group_uses_lower_median_and_safe_scale():
    r = torch.tensor([0.0, 1.0, 2.0, 3.0])
    out = adv("mc_grpo", r, [0, 0, 0, 0], scale="none")
    close(out.advantages, [-1, 0, 1, 2])
    assert not out.keep_mask[1]
    binary = adv("mc_grpo", [1.0, 0, 0, 1, 1], [0] * 5, scale="safe")
    assert binary.advantages.abs().max() < 5   # no +-1000 blow-up: falls back to std


def test_mc_grpo_multiple_groups_one_pivot_each():
    r = torch.tensor([1.0, 0, 0, 1, 1, 2.0, 0, 1.5, 2.0, 0])
    g = torch.tensor([7, 7, 7, 7, 7, 3, 3, 3, 3, 3])
    out = adv("mc_grpo", r, g)
    assert int((~out.keep_mask[:5]).sum()) == 1 and int((~out.keep_mask[5:]).sum()) == 1
    assert not out.keep_mask[7]


# ---------------------------------------------------------------- A3: GDPO

def test_gdpo_worked_example():
    r = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    g = [0, 0, 1, 1]
    close(adv("gdpo", r, g).advantages, [-0.547680, 0.547680, -1.095360, 1.095360])
    close(adv("grpo", r, g).advantages, [-0.707007, 0.707007, -0.707057, 0.707057])


def test_gdpo_single_reward_falls_back_to_grpo_and_constant_batch_is_zero():
    close(adv("gdpo", R, ONE_GROUP).advantages, adv("grpo", R, ONE_GROUP).advantages)
    out = adv("gdpo", torch.ones(4, 2), [0, 0, 1, 1])
    assert torch.equal(out.advantages, torch.zeros(4, dtype=out.advantages.dtype))


# ---------------------------------------------------------------- A4: GD2PO

def test_gd2po_single_group_filters():
    r = torch.tensor([[1.0, 0], [0, 0], [0, 1], [0, 1]])
    g = [0, 0, 0, 0]
    plain = adv("gd2po", r, g, conflict_filter="none")
    close(plain.advantages, [0.689551, -1.485777, 0.398113, 0.398113])
    snr02 = adv("gd2po", r, g, conflict_filter="snr", tau=0.2)
    close(snr02.advantages, plain.advantages)
    assert snr02.keep_mask.all()
    for out in (adv("gd2po", r, g, conflict_filter="snr", tau=0.8), adv("gd2po", r, g, conflict_filter="hard")):
        assert out.keep_mask.tolist() == [False, True, False, False]
        assert torch.isfinite(out.advantages).all()
    assert adv("gd2po", r, g).metrics["conflict_frac"] == pytest.approx(0.75)
    close(adv("grpo", r[:, 0], g, eps=1e-6).advantages, [1.499997, -0.499999, -0.499999, -0.499999])
    close(adv("grpo", r[:, 1], g, eps=1e-6).advantages, [-0.866024, -0.866024, 0.866024, 0.866024])
    combined = adv("gd2po", r, g, conflict_filter="none", whiten=False).advantages
    close(combined, [0.633973, -1.366023, 0.366025, 0.366025])
    a_u, a_h = adv("grpo", r[:, 0], g, eps=1e-6).advantages, adv("grpo", r[:, 1], g, eps=1e-6).advantages
    close((a_u + a_h) / (a_u.abs() + a_h.abs() + 1e-8), [0.267949, -1, 0.267949, 0.267949])


def test_gd2po_two_group_whitening_keeps_query_ratio():
    u = [1, 0, 1, 0, 1, 1, 0, 0]
    h = [1, 1, 0, 0, 1, 1, 0, 0]
    r = torch.tensor([u, h], dtype=torch.float64).T
    g = [0, 0, 0, 0, 1, 1, 1, 1]
    hard = adv("gd2po", r, g, conflict_filter="hard")
    close(hard.advantages, [0.527046, 0, 0, -0.527046, 1.054093, 1.054093, -1.054093, -1.054093])
    assert hard.keep_mask.tolist() == [True, False, False, True, True, True, True, True]
    plain = adv("gd2po", r, g, conflict_filter="none")
    close(plain.advantages, [1.080123, 0, 0, -1.080123, 1.080123, 1.080123, -1.080123, -1.080123])


def test_gd2po_token_weighted_whitening_matches_repeated_rows():
    r = torch.tensor([[1.0, 0], [0, 1], [1, 1], [0, 0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]])
    out = adv("gd2po", r, [0, 0, 0, 0], conflict_filter="none", response_mask=mask)
    pre = torch.tensor([0.0, 0.0, 1.732048, -1.732048]) * 1.0
    pre = adv("gd2po", r, [0, 0, 0, 0], conflict_filter="none", whiten=False).advantages
    tokens = pre.repeat_interleave(mask.sum(1))
    expected = (pre - tokens.mean()) / torch.sqrt(tokens.var() + 1e-8)
    close(out.advantages, expected)


# ---------------------------------------------------------------- A6: XRPO novelty sharpening

def test_xrpo_sharpening_worked_example_and_errata_defaults():
    s = torch.tensor([-0.3, -0.6, -0.5, -0.9, -0.5])
    placeholder = adv("xrpo", R, ONE_GROUP, seq_logps=s, eps=1e-6, novelty_lambda=1.0, novelty_kappa=1.0)
    close(placeholder.advantages, [0.730295, -1.095443, -1.095443, 1.018525, 0.730295])
    paper = adv("xrpo", R, ONE_GROUP, seq_logps=s, eps=1e-6)        # lambda 2.5, kappa 0.5
    close(paper.advantages, [0.730295, -1.095443, -1.095443, 1.095443, 0.730295])


def test_xrpo_from_token_logps_and_correct_mask():
    logps = torch.tensor([[-0.3, -0.3], [-0.6, -0.6], [-0.5, 0.0], [-0.9, -0.9], [-0.5, -0.5]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 1], [1, 1]])
    out = adv("xrpo", R, ONE_GROUP, logps=logps, response_mask=mask, eps=1e-6, novelty_lambda=1.0,
              novelty_kappa=1.0)
    close(out.advantages[3], 1.018525)
    no_credit = adv("xrpo", R, ONE_GROUP, seq_logps=logps[:, 0], correct=torch.zeros(5, dtype=torch.bool))
    close(no_credit.advantages, adv("grpo", R, ONE_GROUP).advantages)
    with pytest.raises(ValueError, match="seq_logps"):
        adv("xrpo", R, ONE_GROUP)


# ---------------------------------------------------------------- A9: BranchGRPO trees

TREE_PARENTS = torch.tensor([-1, 0, 0, 1, 1, 2, 2])           # root, a, b, leaves a1 a2 b1 b2
TREE_REWARDS = torch.tensor([0.0, 0.0, 0.0, 0.8, 0.6, 0.2, 0.4])


def test_branch_depthwise_advantages_worked_example():
    out = adv("branch", TREE_REWARDS, [0] * 7, parent_ids=TREE_PARENTS)
    close(out.advantages, [0, 0.707107, -0.707107, 1.161895, 0.387298, -1.161895, -0.387298])


def test_branch_prob_weighted_value_and_two_trees():
    from veripo.algos.advantages import tree_values

    logps = torch.tensor([0.0, 0.0, 0.0, -1.0, -2.0, 0.0, 0.0])
    values = tree_values(TREE_REWARDS.double(), TREE_PARENTS, edge_logps=logps)
    close(values[1], 0.746212)
    parents = torch.cat([TREE_PARENTS, torch.where(TREE_PARENTS >= 0, TREE_PARENTS + 7, TREE_PARENTS)])
    two = adv("branch", torch.cat([TREE_REWARDS, TREE_REWARDS + 1]), [0] * 7 + [1] * 7, parent_ids=parents)
    close(two.advantages[:7], two.advantages[7:])   # trees are normalised separately


def test_branch_token_level_mapping():
    token_nodes = torch.tensor([[1, 1, 3, 3, -1], [2, 2, 6, -1, -1]])
    out = adv("branch", TREE_REWARDS, [0] * 7, parent_ids=TREE_PARENTS, token_node_ids=token_nodes)
    assert out.advantages.shape == (2, 5) and out.keep_mask.tolist() == [True, True]
    close(out.advantages[0], [0.707107, 0.707107, 1.161895, 1.161895, 0])
    close(out.advantages[1], [-0.707107, -0.707107, -0.387298, 0, 0])


# ---------------------------------------------------------------- A10: AWM, A11: Sol-RL

def test_awm_advantages_worked_example():
    close(adv("awm", R, ONE_GROUP).advantages, [0.163266, -0.244899, -0.244899, 0.163266, 0.163266])
    assert torch.equal(adv("awm", torch.ones(4), [0, 0, 1, 1]).advantages, torch.zeros(4, dtype=torch.float64))


def test_sol_rl_selection_then_grpo():
    fp4 = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4])
    top, bottom = select_extremes(fp4, 2)
    assert top.tolist() == [1, 6] and bottom.tolist() == [5, 0]
    bf16 = torch.tensor([0.88, 0.79, 0.22, 0.12])
    close(adv("grpo", bf16, [0] * 4).advantages, [0.973072, 0.741081, -0.728193, -0.985960])


# ---------------------------------------------------------------- general contract

@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "mc_grpo", "awm"])
def test_never_nan_on_degenerate_batches(name):
    for rewards, groups in [([1.0], [0]), ([0.0, 0.0, 0.0], [5, 5, 5]), ([1.0, 1.0, 0.0, 0.0], [0, 0, 1, 1])]:
        out = adv(name, rewards, groups)
        assert torch.isfinite(out.advantages).all(), (name, rewards)
        assert out.keep_mask.dtype == torch.bool and out.keep_mask.shape == (len(rewards),)
        assert all(math.isfinite(v) for v in out.metrics.values())


def test_advantages_carry_no_gradient():
    r = torch.tensor([1.0, 0.0, 0.5], requires_grad=True)
    out = get_advantage_estimator("grpo")(r, torch.zeros(3, dtype=torch.long))
    assert not out.advantages.requires_grad


def _loop_reference(name, r, g):
    out = torch.zeros_like(r)
    for gid in torch.unique(g):
        idx = torch.nonzero(g == gid).flatten()
        x = r[idx]
        if name == "grpo":
            out[idx] = (x - x.mean()) / (x.std() + 1e-4) if len(x) > 1 else 0.0
        elif name == "dr_grpo":
            out[idx] = x - x.mean()
        elif name == "rloo":
            out[idx] = torch.stack([x[i] - torch.cat([x[:i], x[i + 1:]]).mean() for i in range(len(x))]) \
                if len(x) > 1 else torch.zeros_like(x)
        elif name == "mc_grpo":
            med = torch.sort(x).values[(len(x) - 1) // 2]
            mad = torch.sort((x - med).abs()).values[(len(x) - 1) // 2]
            out[idx] = (x - med) / (mad + 1e-3)
    return out


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "mc_grpo"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_per_group_loop(name, seed):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randint(0, 6, (40,), generator=gen)
    r = torch.randint(0, 4, (40,), generator=gen).double() / 3 + (torch.rand(40, generator=gen, dtype=torch.float64)
                                                                  if seed == 2 else 0)
    close(adv(name, r, g).advantages, _loop_reference(name, r, g), atol=1e-9)


def _awm_tracker(prompts, rewards, global_std, clip=5.0, adv_max=1.0):
    """AWM's advantages re-derived from scxue/advantage_weighted_matching ``flow_grpo/stat_tracking.py``
    (``PerPromptStatTracker.update`` after ``clear()``) and ``scripts/train_sd3_awm.py`` (clip to +-adv_clip_max,
    rescale to advantage_max): mean over the prompt's samples; std = np.std (population) of ALL rewards when
    global_std, else of the prompt's samples; both + 1e-4."""
    prompts, rewards = np.asarray(prompts), np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(rewards)
    for p in np.unique(prompts):
        sel = prompts == p
        std = (np.std(rewards) if global_std else np.std(rewards[sel])) + 1e-4
        out[sel] = (rewards[sel] - rewards[sel].mean()) / std
    return np.clip(out, -clip, clip) / clip * adv_max


@pytest.mark.parametrize("global_std", [True, False])
def test_awm_matches_the_authors_tracker_including_single_sample_prompts(global_std):
    g = [0, 0, 0, 1, 2, 2, 3]                       # prompts 1 and 3 have ONE sample each
    r = [1.0, 0.0, 0.5, 0.9, 0.2, 0.6, 0.1]
    out = adv("awm", r, g, global_std=global_std)
    close(out.advantages, _awm_tracker(g, r, global_std), atol=1e-9)
    assert out.advantages[3] == 0 and out.advantages[6] == 0   # was 0.9/5 = 0.18 with singleton "raw"
