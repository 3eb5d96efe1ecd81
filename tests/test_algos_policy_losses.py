"""Policy losses and loss aggregation: spec worked numbers (A1 DAPO clip / token-mean, A5 DRPO, A10 AWM), equality
with TRL 1.16's GRPOTrainer._compute_loss on random tensors, gradients, edge cases."""
import math
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from veripo.algos import (
    UnknownNameError,
    aggregate_loss,
    drpo_gradient_coefficients,
    get_advantage_estimator,
    get_policy_loss,
    list_policy_losses,
)

trl_grpo = pytest.importorskip("trl.trainer.grpo_trainer")


def one_token(ratio, advantage, **hp):
    """Per-token loss of one token with the given ratio and advantage (loss_agg_mode grpo = that token)."""
    logps = torch.tensor([[math.log(ratio)]], dtype=torch.float64, requires_grad=True)
    loss, metrics = get_policy_loss("ppo_clip")(logps=logps, old_logps=torch.zeros(1, 1, dtype=torch.float64),
                                                advantages=torch.tensor([float(advantage)], dtype=torch.float64),
                                                mask=torch.ones(1, 1), loss_agg_mode="grpo", **hp)
    return loss, logps, metrics


def test_registered_names():
    assert {"ppo_clip", "drpo", "awm"} <= set(list_policy_losses())
    assert get_policy_loss("grpo") is get_policy_loss("ppo_clip")
    with pytest.raises(UnknownNameError, match="drpo"):
        get_policy_loss("ppo-clip")


@pytest.mark.parametrize("advantage,ratio,expected,has_grad", [
    (1, 1.35, -1.28, False), (1, 1.1, -1.1, True), (-1, 0.7, 0.8, False), (-1, 1.5, 1.5, True), (-1, 12.0, 12.0, True),
])
def test_clip_higher_worked_examples_spec_a1(advantage, ratio, expected, has_grad):
    loss, logps, _ = one_token(ratio, advantage, clip_low=0.2, clip_high=0.28)
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-9)
    loss.backward()
    assert (logps.grad.abs().item() > 0) == has_grad


def test_dual_clip_caps_negative_advantage_loss():
    loss, logps, metrics = one_token(12.0, -1, clip_low=0.2, clip_high=0.28, dual_clip=10.0)
    assert loss.item() == pytest.approx(10.0)
    loss.backward()
    assert logps.grad.item() == 0 and metrics["clip_frac/dual"] == 1.0
    loss, _, _ = one_token(1.5, -1, clip_low=0.2, clip_high=0.28, dual_clip=10.0)
    assert loss.item() == pytest.approx(1.5)


def test_token_mean_vs_seq_mean_spec_a1():
    per_token = torch.tensor([[1.0, 1.0, 0, 0], [3.0, 3.0, 3.0, 3.0]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert float(aggregate_loss(per_token, mask, "dapo")) == pytest.approx(14 / 6)
    assert float(aggregate_loss(per_token, mask, "token-mean")) == pytest.approx(14 / 6)
    assert float(aggregate_loss(per_token, mask, "grpo")) == pytest.approx(2.0)
    assert float(aggregate_loss(per_token, mask, "seq-mean-token-mean")) == pytest.approx(2.0)
    assert float(aggregate_loss(per_token, mask, "dr_grpo")) == pytest.approx(14 / 8)
    with pytest.raises(ValueError, match="dapo"):
        aggregate_loss(per_token, mask, "mean")


def test_empty_mask_gives_zero_not_nan():
    per_token = torch.randn(3, 4, requires_grad=True)
    mask = torch.zeros(3, 4)
    for mode in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
        value = aggregate_loss(per_token, mask, mode)
        assert value.item() == 0.0
    loss, metrics = get_policy_loss("ppo_clip")(logps=per_token, old_logps=None, advantages=torch.ones(3), mask=mask)
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(per_token.grad).all()
    assert all(math.isfinite(v) for v in metrics.values())


def test_keep_mask_removes_rows_from_the_denominator():
    logps = torch.zeros(2, 3, requires_grad=True)
    mask = torch.ones(2, 3)
    loss, _ = get_policy_loss("ppo_clip")(logps=logps, old_logps=None, advantages=torch.tensor([1.0, -5.0]),
                                          mask=mask, keep_mask=torch.tensor([True, False]))
    assert loss.item() == pytest.approx(-1.0)


def test_k3_kl_needs_reference_and_is_added():
    logps = torch.log(torch.tensor([[0.5, 0.25]]))
    ref = torch.log(torch.tensor([[0.25, 0.25]]))
    with pytest.raises(ValueError, match="ref_logps"):
        get_policy_loss("ppo_clip")(logps=logps, old_logps=None, advantages=torch.zeros(1), mask=torch.ones(1, 2),
                                    beta=0.1)
    loss, metrics = get_policy_loss("ppo_clip")(logps=logps, old_logps=None, advantages=torch.zeros(1),
                                                mask=torch.ones(1, 2), ref_logps=ref, beta=0.1)
    k3 = 0.5 - math.log(0.5) - 1          # exp(ref - logp) - (ref - logp) - 1 for token 0; token 1 is 0
    assert metrics["kl"] == pytest.approx(k3 / 2, rel=1e-6)
    assert loss.item() == pytest.approx(0.1 * k3 / 2, rel=1e-6)


# ---------------------------------------------------------------- TRL 1.16 equality

class _Accelerator:
    num_processes = 1
    sync_gradients = True

    def reduce(self, t, reduction="sum"):
        return t

    def gather(self, t):
        return t

    gather_for_metrics = gather


def trl_grpo_loss(logps, old, ref, adv, mask, loss_type, beta, grad_accum, steps_per_gen, num_items, max_len,
                  level="token", delta=None, is_ratio=None):
    """Run TRL 1.16's own GRPOTrainer._compute_loss with a minimal trainer object (no model: the per-token
    log-probs are returned by the log-prob hook, exactly what a model forward would produce)."""
    def per_token_hook(model, input_ids, attention_mask, logits_to_keep, **kw):
        return logps, torch.zeros_like(logps), None

    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), _get_per_token_logps_and_entropies=per_token_hook,
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level=level, beta=beta,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=delta, steps_per_generation=steps_per_gen),
        loss_type=loss_type, epsilon_low=0.2, epsilon_high=0.28, use_vllm=is_ratio is not None,
        vllm_importance_sampling_correction=is_ratio is not None, current_gradient_accumulation_steps=grad_accum,
        accelerator=_Accelerator(), max_completion_length=max_len, _entropy_bonus_enabled=False,
        aux_loss_enabled=False, _metrics=defaultdict(lambda: defaultdict(list)))
    b, t = logps.shape
    inputs = {"prompt_ids": torch.zeros(b, 2, dtype=torch.long), "prompt_mask": torch.ones(b, 2, dtype=torch.long),
              "completion_ids": torch.zeros(b, t, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
              "num_items_in_batch": torch.tensor(float(num_items))}
    if is_ratio is not None:
        inputs["importance_sampling_ratio"] = is_ratio
    return trl_grpo.GRPOTrainer._compute_loss(trainer, None, inputs), trainer._metrics["train"]


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "luspo"])
@pytest.mark.parametrize("beta,grad_accum,steps_per_gen,level", [(0.0, 1, 1, "token"), (0.04, 4, 2, "token"),
                                                                 (0.0, 2, 4, "sequence")])
def test_matches_trl_grpo_compute_loss(loss_type, beta, grad_accum, steps_per_gen, level):
    gen = torch.Generator().manual_seed(hash((loss_type, beta, level)) % 1000)
    b, t = 6, 9
    base = -torch.rand(b, t, generator=gen, dtype=torch.float64) * 3
    old = base + 0.3 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    ref = base + 0.2 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    adv = torch.randn(b, generator=gen, dtype=torch.float64)
    lengths = torch.randint(0, t + 1, (b,), generator=gen)
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).long()
    num_items = int(mask.sum()) * 3          # the generation batch spans more tokens than this micro-batch
    theirs_logps = base.clone().requires_grad_(True)
    theirs, trl_metrics = trl_grpo_loss(theirs_logps, old, ref, adv, mask, loss_type, beta, grad_accum,
                                        steps_per_gen, num_items, max_len=t + 3, level=level)
    ours_logps = base.clone().requires_grad_(True)
    ours, metrics = get_policy_loss("ppo_clip")(
        logps=ours_logps, old_logps=old, advantages=adv, mask=mask, ref_logps=ref, clip_low=0.2, clip_high=0.28,
        beta=beta, loss_agg_mode=loss_type, importance_sampling_level=level, grad_accum_steps=grad_accum,
        steps_per_generation=steps_per_gen, num_items_in_batch=num_items, max_completion_length=t + 3)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    theirs.backward()
    ours.backward()
    torch.testing.assert_close(ours_logps.grad, theirs_logps.grad, atol=1e-5, rtol=0)
    assert metrics["clip_frac"] == pytest.approx(trl_metrics["clip_ratio/region_mean"][0], abs=1e-6)
    if beta:
        assert metrics["kl"] == pytest.approx(trl_metrics["kl"][0], abs=1e-6)


def test_matches_trl_two_sided_delta_clip():
    gen = torch.Generator().manual_seed(3)
    base = -torch.rand(4, 5, generator=gen, dtype=torch.float64)
    old = base - 0.8 * torch.rand(4, 5, generator=gen, dtype=torch.float64)
    adv, mask = torch.randn(4, generator=gen, dtype=torch.float64), torch.ones(4, 5, dtype=torch.long)
    theirs, _ = trl_grpo_loss(base, old, base, adv, mask, "bnpo", 0.0, 1, 1, 20, 5, delta=1.5)
    ours, _ = get_policy_loss("ppo_clip")(logps=base, old_logps=old, advantages=adv, mask=mask, clip_high=0.28,
                                          delta=1.5, loss_agg_mode="bnpo")
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_gradient_sign_on_a_toy_case():
    for advantage, sign in [(1.0, -1), (-1.0, 1)]:
        logps = torch.full((2, 3), -1.0, requires_grad=True)
        loss, _ = get_policy_loss("ppo_clip")(logps=logps, old_logps=None, advantages=torch.full((2,), advantage),
                                              mask=torch.ones(2, 3))
        loss.backward()
        assert torch.isfinite(logps.grad).all() and (torch.sign(logps.grad) == sign).all()


def test_token_level_advantages_shape():
    logps = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, -6.0]])
    loss, _ = get_policy_loss("ppo_clip")(logps=logps, old_logps=None, advantages=adv, mask=torch.ones(2, 3))
    assert loss.item() == pytest.approx(-(1 + 2 + 3 - 6) / 6)


# ---------------------------------------------------------------- A5 DRPO, A10 AWM

def _drpo_inputs():
    rewards = torch.tensor([1.0, 0, 0, 1, 1])
    lengths = torch.tensor([100, 300, 400, 800, 200])
    s = torch.tensor([-0.5, -0.7, -0.9, -0.6, -0.4], dtype=torch.float64)
    return rewards, lengths, s


def test_drpo_worked_example_coefficients():
    rewards, lengths, s = _drpo_inputs()
    coef = drpo_gradient_coefficients(rewards, lengths, torch.zeros(5, dtype=torch.long), s, lam=0.1, tau=10.0,
                                      max_response_length=1000)
    np.testing.assert_allclose(coef.numpy(), [0.730572, -0.505, -0.495, 0.000666, 0.268762], atol=1e-6)


def test_drpo_objective_value_and_gradient_direction():
    rewards, lengths, s = _drpo_inputs()
    mask = (torch.arange(1000).unsqueeze(0) < lengths.unsqueeze(1)).double()
    logps = (s.unsqueeze(1) * mask).requires_grad_(True)
    loss, metrics = get_policy_loss("drpo")(logps=logps, old_logps=logps.detach(), advantages=None, mask=mask,
                                            rewards=rewards, group_ids=torch.zeros(5, dtype=torch.long))
    assert metrics["objective"] == pytest.approx(0.326310, abs=1e-6)
    assert loss.item() == pytest.approx(-0.326310, abs=1e-6)
    loss.backward()
    per_seq = (logps.grad * mask).sum(1)
    assert (per_seq[[0, 3, 4]] <= 0).all() and (per_seq[[1, 2]] > 0).all()   # descent raises correct s


def test_drpo_invalid_groups_and_kl_penalty():
    logps = torch.full((4, 2), -1.0, requires_grad=True)
    loss, metrics = get_policy_loss("drpo")(logps=logps, old_logps=None, advantages=None, mask=torch.ones(4, 2),
                                            rewards=torch.tensor([1.0, 1, 0, 0]),
                                            group_ids=torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert loss.item() == 0 and metrics["valid_group_frac"] == 0 and torch.isfinite(logps.grad).all()
    logps = torch.full((2, 2), -1.0, requires_grad=True)
    old = torch.full((2, 2), -0.9)
    loss, metrics = get_policy_loss("drpo")(logps=logps, old_logps=old, advantages=None, mask=torch.ones(2, 2),
                                            rewards=torch.tensor([1.0, 0.0]), group_ids=torch.tensor([0, 0]))
    assert metrics["kl"] == pytest.approx(0.1, abs=1e-6)
    assert metrics["kl_penalty_coef"] == pytest.approx(1e3 * (0.1 - 1e-4), rel=1e-5)


def test_awm_advantage_weighted_loss_worked_example():
    a = get_advantage_estimator("awm")(torch.tensor([1.0, 0, 0, 1, 1]), torch.zeros(5, dtype=torch.long))
    mse = torch.tensor([[0.5], [0.8], [0.6], [0.4], [0.7]])
    logps = (-mse).requires_grad_(True)          # the pretraining loss as negative log-likelihood surrogate
    loss, _ = get_policy_loss("awm")(logps=logps, old_logps=None, advantages=a.advantages.float(),
                                     mask=torch.ones(5, 1))
    assert loss.item() == pytest.approx(-0.016327, abs=1e-6)
    loss.backward()
    assert torch.allclose(logps.grad.flatten(), -a.advantages.float() / 5)


# ---------------------------------------------------------------- masked rows (MC-GRPO pivots, filtered rollouts)

def _mc_grpo_authors(rewards, n):
    """MC-GRPO's advantages and pivots, re-derived from lotusroot-kim/MC-GRPO ``src/open_r1/grpo_trainer_math.py``
    (``_generate_and_score_completions`` with ``mc=True``, train mode): per group of n = G+1, m = torch.median
    (lower middle), MAD = median |r - m| + 1e-3, A = (r - m) / MAD (no std scaling); the median's row is sliced
    out of every tensor before ``_compute_loss``. The groups here have a unique median, so the pivot is defined."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, n)
    med = np.sort(r, axis=1)[:, (n - 1) // 2]
    mad = np.sort(np.abs(r - med[:, None]), axis=1)[:, (n - 1) // 2] + 1e-3
    adv = ((r - med[:, None]) / mad[:, None]).reshape(-1)
    pivot = (r == med[:, None]).reshape(-1)
    return torch.tensor(adv), torch.tensor(~pivot)


MC_REWARDS = [2.0, 0.0, 1.5, 2.0, 0.0, 0.1, 0.7, 0.4, 0.9, 0.3]   # G = 4: two groups of G+1 = 5, medians 1.5, 0.4


def test_mc_grpo_advantages_and_pivots_match_the_authors_formula():
    ours = get_advantage_estimator("mc_grpo")(torch.tensor(MC_REWARDS, dtype=torch.float64),
                                              torch.arange(2).repeat_interleave(5))
    adv, keep = _mc_grpo_authors(MC_REWARDS, 5)
    torch.testing.assert_close(ours.advantages, adv)
    assert ours.keep_mask.tolist() == keep.tolist()


def test_mc_grpo_pivot_is_not_a_row_of_the_grpo_mean_hand_numbers():
    # one group, G = 4 (5 rollouts), on-policy, every rollout 3 tokens: per-token loss = -A.
    # A = [0.998004, -2.994012, 0 (pivot), 0.998004, -2.994012]; the authors drop the pivot, so
    # grpo = -(0.998004 - 2.994012 + 0.998004 - 2.994012) / 4 = 0.998004   (counting the pivot: /5 = 0.798403)
    # dr_grpo (T = 3) = sum_i 3 * (-A_i) / (4 * 3) = 0.998004 as well.
    a = get_advantage_estimator("mc_grpo")(torch.tensor(MC_REWARDS[:5]), torch.zeros(5, dtype=torch.long))
    logps = torch.zeros(5, 3, requires_grad=True)
    for mode in ("grpo", "dr_grpo", "bnpo", "dapo"):
        loss, _ = get_policy_loss("ppo_clip")(logps=logps, old_logps=None, advantages=a.advantages,
                                              mask=torch.ones(5, 3), keep_mask=a.keep_mask, loss_agg_mode=mode)
        assert loss.item() == pytest.approx(0.998004, abs=1e-5), mode


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "luspo"])
@pytest.mark.parametrize("beta,grad_accum,steps_per_gen", [(0.0, 1, 1), (0.04, 2, 2)])
def test_masked_rows_equal_trl_loss_on_the_batch_with_those_rows_deleted(loss_type, beta, grad_accum, steps_per_gen):
    """The authors' MC-GRPO fork slices the pivots out and then runs TRL's ``_compute_loss`` (same aggregation
    code as TRL 1.16): veripo's keep_mask must give the same loss and gradient for every aggregation mode."""
    gen = torch.Generator().manual_seed(11)
    b, t = 10, 7
    base = -torch.rand(b, t, generator=gen, dtype=torch.float64) * 2
    old = base + 0.3 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    ref = base + 0.2 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    adv, keep = _mc_grpo_authors(MC_REWARDS, 5)
    adv = adv / 3                                   # keep ratios in a range where clipping is mixed
    lengths = torch.tensor([7, 3, 5, 1, 6, 2, 7, 4, 5, 3])
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).long()
    kept_items = int(mask[keep].sum())
    theirs_logps = base.clone().requires_grad_(True)
    theirs, _ = trl_grpo_loss(theirs_logps[keep], old[keep], ref[keep], adv[keep], mask[keep], loss_type, beta,
                              grad_accum, steps_per_gen, kept_items, max_len=t)
    ours_logps = base.clone().requires_grad_(True)
    ours, _ = get_policy_loss("ppo_clip")(
        logps=ours_logps, old_logps=old, advantages=adv, mask=mask, ref_logps=ref, keep_mask=keep, beta=beta,
        clip_low=0.2, clip_high=0.28, loss_agg_mode=loss_type, grad_accum_steps=grad_accum,
        steps_per_generation=steps_per_gen, num_items_in_batch=kept_items, max_completion_length=t)
    torch.testing.assert_close(ours, theirs, atol=1e-9, rtol=0)
    theirs.backward()
    ours.backward()
    torch.testing.assert_close(ours_logps.grad, theirs_logps.grad, atol=1e-9, rtol=0)


@pytest.mark.parametrize("mode", ["grpo", "dr_grpo", "luspo"])
def test_num_rows_in_batch_weights_uneven_micro_batches_like_the_deleted_batch(mode):
    gen = torch.Generator().manual_seed(5)
    per_token = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    mask = (torch.arange(4).unsqueeze(0) < torch.tensor([4, 2, 3, 1, 4, 2]).unsqueeze(1)).double()
    keep = torch.tensor([True, False, True, True, True, False])
    whole = aggregate_loss(per_token[keep], mask[keep], mode, max_completion_length=4)
    # three micro-batches of 2 rows keep 1, 2 and 1 rows: per-micro-batch means would weight them unevenly
    parts = sum(aggregate_loss(per_token[s:s + 2], mask[s:s + 2], mode, keep_mask=keep[s:s + 2], grad_accum_steps=3,
                               num_rows_in_batch=int(keep.sum()), max_completion_length=4) for s in (0, 2, 4))
    torch.testing.assert_close(parts, whole)
    uneven = sum(aggregate_loss(per_token[s:s + 2], mask[s:s + 2], mode, keep_mask=keep[s:s + 2],
                                grad_accum_steps=3, max_completion_length=4) for s in (0, 2, 4))
    assert abs(float(uneven - whole)) > 1e-3      # the per-micro-batch (TRL) weighting differs on this batch


def test_keep_mask_shape_is_checked():
    with pytest.raises(ValueError, match="keep_mask must be"):
        aggregate_loss(torch.ones(2, 3), torch.ones(2, 3), "grpo", keep_mask=torch.ones(3, dtype=torch.bool))


def test_dynamic_sampling_rows_are_not_rows_of_the_denominator():
    """DAPO (verl recipe) deletes zero-spread groups from the batch: rows masked by ``dynamic_sampling_mask`` count
    in no denominator. Group 0 = [1, 0] (kept), group 1 = [1, 1] (dropped); per-token loss 1 on row 0, 3 on row 1."""
    from veripo.algos import dynamic_sampling_mask
    keep = dynamic_sampling_mask(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([0, 0, 1, 1]))
    assert keep.tolist() == [True, True, False, False]
    per_token = torch.tensor([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0], [5.0, 5.0]])
    for mode, expected in [("grpo", 2.0), ("dr_grpo", 8 / (2 * 2)), ("luspo", 4.0), ("bnpo", 2.0), ("dapo", 2.0)]:
        assert aggregate_loss(per_token, torch.ones(4, 2), mode, keep_mask=keep).item() == pytest.approx(expected)


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_is_weights_match_trl_importance_sampling_ratio(level):
    """Sol-RL's cheap-vs-full correction enters the loss as TRL's vLLM importance-sampling ratio does."""
    from veripo.algos import truncated_is_weights
    gen = torch.Generator().manual_seed(21)
    b, t = 5, 6
    base = -torch.rand(b, t, generator=gen, dtype=torch.float64) * 2
    old = base + 0.2 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    ref = base + 0.2 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    cheap = old + 0.4 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    adv = torch.randn(b, generator=gen, dtype=torch.float64)
    mask = (torch.arange(t).unsqueeze(0) < torch.tensor([6, 4, 1, 5, 3]).unsqueeze(1)).long()
    w = truncated_is_weights(old, cheap, mask, cap=2.0, level=level)
    theirs_logps = base.clone().requires_grad_(True)
    theirs, _ = trl_grpo_loss(theirs_logps, old, ref, adv, mask, "dapo", 0.04, 1, 1, int(mask.sum()), max_len=t,
                              is_ratio=w)
    ours_logps = base.clone().requires_grad_(True)
    ours, metrics = get_policy_loss("ppo_clip")(logps=ours_logps, old_logps=old, advantages=adv, mask=mask,
                                                ref_logps=ref, beta=0.04, clip_low=0.2, clip_high=0.28,
                                                loss_agg_mode="dapo", is_weights=w)
    torch.testing.assert_close(ours, theirs, atol=1e-9, rtol=0)
    theirs.backward()
    ours.backward()
    torch.testing.assert_close(ours_logps.grad, theirs_logps.grad, atol=1e-9, rtol=0)
    assert 0 < metrics["is_weight/mean"] <= 2.0
    plain, _ = get_policy_loss("ppo_clip")(logps=base, old_logps=old, advantages=adv, mask=mask, ref_logps=ref,
                                           beta=0.04, loss_agg_mode="dapo")
    assert abs(float(plain.detach()) - float(ours.detach())) > 1e-4        # the weights change the loss
