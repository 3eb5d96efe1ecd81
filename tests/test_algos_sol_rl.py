"""Sol-RL (adapted): the pool's contrastive subset per prompt and the truncated importance weights, on crafted
tensors (spec A11 worked example; hand numbers)."""
import math

import pytest
import torch

from veripo.algos import get_advantage_estimator, pool_subset_mask, select_extremes, truncated_is_weights

SPEC_POOL = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4])


def test_spec_a11_subset_then_grpo_over_the_subset():
    keep = pool_subset_mask(SPEC_POOL, torch.zeros(8, dtype=torch.long), keep_top=2, keep_bottom=2)
    assert torch.nonzero(keep).flatten().tolist() == [0, 1, 5, 6]
    # spec A11: BF16 re-rewards of (top 1, 6; bottom 5, 0) = [0.88, 0.79, 0.22, 0.12] -> GRPO over S
    rows = torch.tensor([1, 6, 5, 0])
    assert keep[rows].all()
    out = get_advantage_estimator("grpo")(torch.tensor([0.88, 0.79, 0.22, 0.12]), torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(out.advantages, torch.tensor([0.973072, 0.741081, -0.728193, -0.985960]),
                               atol=1e-5, rtol=0)


def test_per_prompt_selection_with_asymmetric_counts():
    # two prompts interleaved (rows need not be sorted), keep the best 1 and the worst 2 of each
    r = torch.tensor([0.5, 9.0, 0.1, 8.0, 0.9, 7.0, 0.3, 6.0, 0.7, 5.0])
    g = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    keep = pool_subset_mask(r, g, keep_top=1, keep_bottom=2)
    # prompt 0 rewards (rows 0,2,4,6,8) = .5 .1 .9 .3 .7: best row 4, worst rows 2 and 6
    # prompt 1 rewards (rows 1,3,5,7,9) = 9 8 7 6 5: best row 1, worst rows 7 and 9
    assert torch.nonzero(keep).flatten().tolist() == [1, 2, 4, 6, 7, 9]


def test_ties_are_deterministic_earlier_row_ranks_better():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    g = torch.zeros(5, dtype=torch.long)
    assert pool_subset_mask(r, g, 1, 1).tolist() == [True, False, False, False, True]
    assert pool_subset_mask(r, g, 2, 2).tolist() == [True, True, False, True, True]
    all_equal = pool_subset_mask(torch.zeros(6), torch.zeros(6, dtype=torch.long), 2, 2)
    assert all_equal.tolist() == [True, True, False, False, True, True]
    top, bottom = select_extremes(r, 2)                       # the single-pool helper shares the tie rule
    assert top.tolist() == [0, 1] and bottom.tolist() == [3, 4]


def test_small_pools_are_kept_whole_and_nan_never_kept():
    g = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    r = torch.tensor([0.2, 0.9, 0.5, 0.1, float("nan"), 0.4, 0.3])
    keep = pool_subset_mask(r, g, keep_top=2, keep_bottom=2)
    # prompt 0 has 3 <= 4 candidates: all kept; prompt 1 has 3 scored ones: all three, not the NaN
    assert keep.tolist() == [True, True, True, True, False, True, True]
    assert not pool_subset_mask(r, g, 0, 0).any()
    with pytest.raises(ValueError, match=">= 0"):
        pool_subset_mask(r, g, -1, 2)


def test_token_level_truncated_ratio_hand_numbers():
    full = torch.tensor([[math.log(0.5), math.log(0.9), math.log(0.2)]])
    cheap = torch.tensor([[math.log(0.25), math.log(0.1), math.log(0.4)]])
    mask = torch.tensor([[1, 1, 0]])
    w = truncated_is_weights(full, cheap, mask, cap=3.0)
    # ratios 0.5/0.25 = 2, 0.9/0.1 = 9 -> capped at 3, the masked token -> 1
    torch.testing.assert_close(w, torch.tensor([[2.0, 3.0, 1.0]]))
    masked = truncated_is_weights(full, cheap, mask, cap=3.0, mode="mask")
    torch.testing.assert_close(masked, torch.tensor([[2.0, 0.0, 1.0]]))
    floored = truncated_is_weights(full, cheap, torch.ones(1, 3), cap=3.0, floor=0.6)
    torch.testing.assert_close(floored, torch.tensor([[2.0, 3.0, 0.6]]))   # 0.2/0.4 = 0.5 -> floor 0.6


def test_sequence_level_ratio_is_the_product_over_live_tokens():
    full = torch.log(torch.tensor([[0.5, 0.9, 0.2], [0.3, 0.3, 0.3]]))
    cheap = torch.log(torch.tensor([[0.25, 0.6, 0.9], [0.6, 0.5, 0.3]]))
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    w = truncated_is_weights(full, cheap, mask, cap=2.5, level="sequence")
    # row 0: 2 * 1.5 = 3 -> capped 2.5 (the masked third token ignored); row 1: 0.5 * 0.6 * 1 = 0.3
    assert w.shape == (2, 1)
    torch.testing.assert_close(w, torch.tensor([[2.5], [0.3]]))


def test_weights_are_detached_and_nan_sampling_logp_is_no_mismatch():
    full = torch.zeros(1, 2, requires_grad=True)
    cheap = torch.tensor([[float("nan"), math.log(0.5)]])
    w = truncated_is_weights(full, cheap, torch.ones(1, 2))
    assert not w.requires_grad
    torch.testing.assert_close(w, torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="level"):
        truncated_is_weights(full, cheap, torch.ones(1, 2), level="row")
    with pytest.raises(ValueError, match="share a shape"):
        truncated_is_weights(full, cheap[:, :1], torch.ones(1, 2))
