"""Value-based estimators (ppo_gae, pdppo), GAE and the clipped value loss, against hand-computed trajectories."""
import pytest
import torch

from veripo.algos import clipped_value_loss, gae, get_advantage_estimator, outcome_token_rewards

GAMMA, LAM = 0.9, 0.8          # gamma * lam = 0.72
REWARDS = torch.tensor([1.0, 0.0], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.float64)       # row 1 has 2 tokens and one pad
V1 = torch.tensor([[0.5, 0.6, 0.8], [0.3, 0.2, 9.0]], dtype=torch.float64)   # 9.0 / -9.0 sit on the pad
V2 = torch.tensor([[0.4, 0.7, 0.9], [0.1, 0.5, -9.0]], dtype=torch.float64)
G0 = torch.zeros(2, dtype=torch.long)


def est(name, **kw):
    return get_advantage_estimator(name)(REWARDS, G0, response_mask=MASK, gamma=GAMMA, lam=LAM, whiten=False, **kw)


def test_outcome_reward_sits_on_the_last_token():
    r = outcome_token_rewards(REWARDS.clone().fill_(2.0), MASK)
    assert r.tolist() == [[0, 0, 2.0], [0, 2.0, 0]]
    hole = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    assert outcome_token_rewards(torch.tensor([3.0, 4.0]), hole).tolist() == [[0, 3.0, 0, 0], [0, 0, 0, 0]]


def test_pdppo_min_hand_computed_trajectory():
    # V = min(V1, V2): row 0 [0.4, 0.6, 0.8], row 1 [0.1, 0.2] (pad ignored)
    # row 0 (r = 1 on t=2):
    #   t=2: delta = 1 + 0.9*0 - 0.8 = 0.2                   A2 = 0.2
    #   t=1: delta = 0 + 0.9*0.8 - 0.6 = 0.12                A1 = 0.12 + 0.72*0.2   = 0.264
    #   t=0: delta = 0 + 0.9*0.6 - 0.4 = 0.14                A0 = 0.14 + 0.72*0.264 = 0.33008
    # row 1 (r = 0 on t=1):
    #   t=1: delta = 0 + 0.9*0 - 0.2 = -0.2                  A1 = -0.2
    #   t=0: delta = 0 + 0.9*0.2 - 0.1 = 0.08                A0 = 0.08 + 0.72*(-0.2) = -0.064
    out = est("pdppo", values=V1, values2=V2)
    torch.testing.assert_close(out.advantages, torch.tensor([[0.33008, 0.264, 0.2], [-0.064, -0.2, 0.0]],
                                                            dtype=torch.float64))
    assert out.keep_mask.tolist() == [True, True]
    # each head's own lambda-return, head 1 (V1) row 0:
    #   t=2: A = 1 - 0.8 = 0.2 -> R = 1.0;  t=1: A = 0.72 - 0.6 + 0.72*0.2 = 0.264 -> R = 0.864
    #   t=0: A = 0.54 - 0.5 + 0.72*0.264 = 0.23008 -> R = 0.73008
    # head 1 row 1: t=1: A = -0.2 -> R = 0.0;  t=0: A = 0.18 - 0.3 + 0.72*(-0.2) = -0.264 -> R = 0.036
    assert out.returns.shape == (2, 3, 2)
    torch.testing.assert_close(out.returns[..., 0], torch.tensor([[0.73008, 0.864, 1.0], [0.036, 0.0, 0.0]],
                                                                 dtype=torch.float64))
    # head 2 row 0: t=2: A = 1 - 0.9 = 0.1 -> R = 1.0; t=1: A = 0.81 - 0.7 + 0.072 = 0.182 -> R = 0.882
    #   t=0: A = 0.63 - 0.4 + 0.72*0.182 = 0.36104 -> R = 0.76104
    torch.testing.assert_close(out.returns[0, :, 1], torch.tensor([0.76104, 0.882, 1.0], dtype=torch.float64))


def test_pdppo_mean_and_max_advantage_hand_computed():
    # mean: row 0 V = [0.45, 0.65, 0.85]
    #   t=2: 1 - 0.85 = 0.15;  t=1: 0.765 - 0.65 + 0.72*0.15 = 0.223;  t=0: 0.585 - 0.45 + 0.72*0.223 = 0.29556
    mean = est("pdppo", values=V1, values2=V2, combine="mean")
    torch.testing.assert_close(mean.advantages[0], torch.tensor([0.29556, 0.223, 0.15], dtype=torch.float64))
    # max_advantage (the paper's rule): head-1 A row 0 = [0.23008, 0.264, 0.2], head-2 = [0.36104, 0.182, 0.1]
    best = est("pdppo", values=V1, values2=V2, combine="max_advantage")
    torch.testing.assert_close(best.advantages[0], torch.tensor([0.36104, 0.264, 0.2], dtype=torch.float64))


def test_ppo_gae_single_head_is_pdppo_with_equal_heads():
    single = est("ppo_gae", values=V1)
    twin = est("pdppo", values=V1, values2=V1.clone())
    torch.testing.assert_close(single.advantages, twin.advantages)
    torch.testing.assert_close(single.returns, twin.returns[..., 0])
    torch.testing.assert_close(single.advantages[0], torch.tensor([0.23008, 0.264, 0.2], dtype=torch.float64))


def test_gae_limits_monte_carlo_and_td():
    r = torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.float64)
    v = torch.tensor([[0.2, 0.4, 0.3]], dtype=torch.float64)
    m = torch.ones(1, 3)
    mc, ret = gae(r, v, m, gamma=1.0, lam=1.0)     # A_t = sum_{k>=t} r_k - V_t
    torch.testing.assert_close(mc, torch.tensor([[1.5 - 0.2, 1.5 - 0.4, 1.0 - 0.3]], dtype=torch.float64))
    torch.testing.assert_close(ret, torch.tensor([[1.5, 1.5, 1.0]], dtype=torch.float64))
    td, _ = gae(r, v, m, gamma=1.0, lam=0.0)       # A_t = r_t + V_{t+1} - V_t
    torch.testing.assert_close(td, torch.tensor([[0.4 - 0.2, 0.5 + 0.3 - 0.4, 1.0 - 0.3]], dtype=torch.float64))


def test_gae_skips_a_hole_in_the_mask():
    # tokens at t=0 and t=2 only: t=2 bootstraps nothing, t=0 bootstraps V_2 (the next live token), not V_1
    r = torch.tensor([[0.0, 5.0, 1.0]], dtype=torch.float64)
    v = torch.tensor([[0.2, 7.0, 0.3]], dtype=torch.float64)
    a, _ = gae(r, v, torch.tensor([[1, 0, 1]]), gamma=0.9, lam=0.8)
    torch.testing.assert_close(a, torch.tensor([[0.9 * 0.3 - 0.2 + 0.72 * 0.7, 0.0, 0.7]], dtype=torch.float64))


def test_whitening_is_token_weighted_and_padding_stays_zero():
    out = get_advantage_estimator("pdppo")(REWARDS, G0, values=V1, values2=V2, response_mask=MASK, gamma=GAMMA,
                                           lam=LAM)
    live = MASK.bool()
    assert out.advantages[~live].tolist() == [0.0]
    assert float(out.advantages[live].mean()) == pytest.approx(0.0, abs=1e-9)
    assert float(out.advantages[live].std()) == pytest.approx(1.0, abs=1e-4)   # unbiased, + 1e-8 inside the sqrt


def test_unscored_row_is_dropped_and_bad_inputs_raise():
    out = get_advantage_estimator("ppo_gae")(torch.tensor([1.0, float("nan")]), G0, values=V1.float(),
                                             response_mask=MASK, whiten=False)
    assert out.keep_mask.tolist() == [True, False] and out.advantages[1].abs().sum() == 0
    assert torch.isfinite(out.advantages).all() and torch.isfinite(out.returns).all()
    with pytest.raises(ValueError, match="needs values"):
        get_advantage_estimator("ppo_gae")(REWARDS, G0)
    with pytest.raises(ValueError, match="values2"):
        get_advantage_estimator("pdppo")(REWARDS, G0, values=V1)
    with pytest.raises(ValueError, match="combine"):
        get_advantage_estimator("pdppo")(REWARDS, G0, values=V1, values2=V2, combine="max")


def test_clipped_value_loss_hand_numbers():
    # one head, 3 tokens, clip 0.2: V_old = [0, 0, 0], V = [0.5, -0.1, 0.3], R = [1, 1, -1]
    #   t0: unclipped (0.5-1)^2 = 0.25, clipped V=0.2: (0.2-1)^2 = 0.64 -> 0.5*0.64 = 0.32 (clipped term wins)
    #   t1: (-0.1-1)^2 = 1.21, V_clip = -0.1: same -> 0.605
    #   t2: (0.3+1)^2 = 1.69, V_clip = 0.2: 1.44 -> 0.845 (unclipped wins)
    #   token mean = (0.32 + 0.605 + 0.845) / 3 = 0.59
    v = torch.tensor([[0.5, -0.1, 0.3]], requires_grad=True)
    loss, metrics = clipped_value_loss(v, torch.zeros(1, 3), torch.tensor([[1.0, 1.0, -1.0]]), torch.ones(1, 3))
    assert loss.item() == pytest.approx(0.59)
    assert metrics["vf_clipfrac"] == pytest.approx(1 / 3)
    loss.backward()
    # the clipped token has no gradient; the others: d/dV 0.5 (V - R)^2 / 3 = (V - R) / 3
    torch.testing.assert_close(v.grad, torch.tensor([[0.0, -1.1 / 3, 1.3 / 3]]))
    unclipped, _ = clipped_value_loss(v, torch.zeros(1, 3), torch.tensor([[1.0, 1.0, -1.0]]), torch.ones(1, 3),
                                      clip_range=None)
    assert unclipped.item() == pytest.approx((0.125 + 0.605 + 0.845) / 3)


def test_clipped_value_loss_two_heads_sums_heads_and_respects_masks():
    v = torch.tensor([[[0.1, 0.2], [0.3, 0.4]], [[5.0, 5.0], [5.0, 5.0]]], requires_grad=True)   # [2, 2, 2]
    ret = torch.zeros(2, 2, 2)
    loss, _ = clipped_value_loss(v, v.detach(), ret, torch.ones(2, 2), keep_mask=torch.tensor([True, False]))
    # row 1 dropped; row 0 tokens: 0.5*(0.01+0.04) = 0.025 and 0.5*(0.09+0.16) = 0.125 -> mean 0.075
    assert loss.item() == pytest.approx(0.075)
    loss.backward()
    assert v.grad[1].abs().sum() == 0
    with pytest.raises(ValueError, match="share a shape"):
        clipped_value_loss(v, v.detach()[..., :1], ret, torch.ones(2, 2))
