"""Preference losses: spec worked numbers (0.2, B1-B5), equality with TRL 1.16's DPOTrainer._compute_loss for every
TRL loss type on random tensors, gradients, reference handling, combination, implicit rewards."""
import math
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from veripo.algos import (
    MissingReferenceError,
    UnknownNameError,
    brain_loss,
    combine_preference_losses,
    get_preference_loss,
    implicit_rewards,
    list_preference_losses,
    loss_needs_reference,
    preference_metrics,
    smoothed_preference_prob,
)

trl_dpo = pytest.importorskip("trl.trainer.dpo_trainer")

TRL_TYPES = ["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
             "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"]
BATCH_LEVEL = {"aot", "aot_unpaired", "sft"}


def seq(values):
    """A [B, 1] per-token tensor holding whole-sequence log-probs (one 'token' per completion)."""
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1)


def ones(b, t=1):
    return torch.ones(b, t, dtype=torch.long)


def test_all_required_names_registered_and_documented():
    required = set(TRL_TYPES) | {"dpo", "simpo", "tgdpo", "smpo", "brain", "srpo"}
    assert required <= set(list_preference_losses()) | {"dpo"}
    assert get_preference_loss("dpo") is get_preference_loss("sigmoid")
    for name in list_preference_losses():
        doc = get_preference_loss(name).__doc__ or ""
        assert "arXiv" in doc or "et al." in doc or "TRL" in doc, name
    with pytest.raises(UnknownNameError, match="sigmoid"):
        get_preference_loss("dpo_sigmoid")


def test_reference_requirements():
    assert not loss_needs_reference("simpo") and not loss_needs_reference("sft")
    for name in list_preference_losses():
        if loss_needs_reference(name):
            with pytest.raises(MissingReferenceError, match="reference"):
                get_preference_loss(name)(seq([-1.0]), seq([-2.0]), ones(1), ones(1))


# ---------------------------------------------------------------- spec worked numbers

def test_dpo_reference_value_spec_0_2():
    loss = get_preference_loss("dpo")(seq([-1.0]), seq([-2.0]), ones(1), ones(1), seq([-3.0]), seq([-2.0]), beta=0.1)
    assert loss.item() == pytest.approx(0.598139, abs=1e-6)


def test_simpo_worked_example_b1():
    chosen = torch.full((1, 12), -2.0, dtype=torch.float64)
    chosen_mask = torch.tensor([[1] * 10 + [0] * 2])
    rejected = torch.full((1, 12), -3.0, dtype=torch.float64)
    loss = get_preference_loss("simpo")(chosen, rejected, chosen_mask, ones(1, 12), beta=2.0, gamma_beta_ratio=0.5)
    assert loss.item() == pytest.approx(0.313262, abs=1e-6)
    same = get_preference_loss("simpo")(chosen, rejected, chosen_mask, ones(1, 12), beta=2.0, gamma=1.0)
    assert same.item() == pytest.approx(0.313262, abs=1e-6)


TG = dict(chosen=[[-1.0, -2.0]], ref_chosen=[[-1.2, -2.1]], guide_chosen=[[-0.8, -2.5]],
          rejected=[[-1.5, -1.0]], ref_rejected=[[-1.4, -1.1]], guide_rejected=[[-1.9, -0.9]])


def _tgdpo(**hp):
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in TG.items()}
    return get_preference_loss("tgdpo")(
        t["chosen"], t["rejected"], ones(1, 2), ones(1, 2), t["ref_chosen"], t["ref_rejected"],
        chosen_token_guidance=t["guide_chosen"] - t["ref_chosen"],
        rejected_token_guidance=t["guide_rejected"] - t["ref_rejected"], **hp)


def test_tgdpo_worked_example_b2():
    assert _tgdpo(beta=0.1, alpha=0.5).item() == pytest.approx(0.677989, abs=1e-6)
    assert _tgdpo(beta=0.1, alpha=0.0).item() == pytest.approx(0.678260, abs=1e-6)   # alpha=0 is DPO
    with pytest.raises(MissingReferenceError, match="PER-TOKEN"):
        get_preference_loss("tgdpo")(seq([-1.0]), seq([-1.0]), ones(1), ones(1), torch.tensor([-1.0], dtype=torch.float64),
                                     torch.tensor([-1.0]), chosen_token_guidance=seq([0.0]),
                                     rejected_token_guidance=seq([0.0]))


def test_smpo_worked_example_b3():
    bounds = dict(score_min=0.11543526500463486, score_max=0.28201571106910706)
    p = smoothed_preference_prob(torch.tensor([0.25], dtype=torch.float64), torch.tensor([0.20], dtype=torch.float64),
                                 **bounds)
    assert p.item() == pytest.approx(0.574480, abs=1e-6)
    args = (seq([-1.0]), seq([-2.0]), ones(1), ones(1), seq([-3.0]), seq([-2.0]))
    by_scores = get_preference_loss("smpo")(*args, beta=0.1, chosen_scores=torch.tensor([0.25]),
                                            rejected_scores=torch.tensor([0.20]), **bounds)
    assert by_scores.item() == pytest.approx(0.555240, abs=1e-5)
    half = get_preference_loss("smpo")(*args, beta=0.1, preference_prob=torch.tensor([0.5]))
    assert half.item() == pytest.approx(math.log(2))
    flipped = get_preference_loss("smpo")(*args, beta=0.1, preference_prob=torch.tensor([0.2]), clamp_kappa=True)
    assert flipped.item() == pytest.approx(math.log(2))


def test_brain_worked_example_b4():
    rewards = torch.tensor([[2.0, 0.5, -1.0, 0.5]], dtype=torch.float64)
    proposal = torch.tensor([[-10.0, -12.0, -9.0, -11.0]], dtype=torch.float64)     # pi_ref = p_sft = q
    policy = (proposal + torch.tensor([[0.1, 0.0, -0.2, 0.05]], dtype=torch.float64)).requires_grad_(True)
    loss = brain_loss(policy, proposal, rewards=rewards)
    assert loss.item() == pytest.approx(1.312424, abs=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(-policy.grad.numpy()[0], [0.390410, -0.102415, -0.172682, -0.115313], atol=1e-6)
    pair = get_preference_loss("brain")(seq([-9.9]), seq([-5.0]), ones(1), ones(1), seq([-10.0]), seq([-5.0]))
    assert pair.item() == pytest.approx(0.644397, abs=1e-6)
    dpo_beta1 = get_preference_loss("sigmoid")(seq([-9.9]), seq([-5.0]), ones(1), ones(1), seq([-10.0]),
                                               seq([-5.0]), beta=1.0)
    assert pair.item() == pytest.approx(dpo_beta1.item(), abs=1e-12)


SRPO_LR = {name: torch.tensor([value], dtype=torch.float64) for name, value in [
    ("logratio_chosen_given_rejected", 3.0), ("logratio_rejected_given_rejected", -1.0),
    ("logratio_chosen_given_chosen", 0.5), ("logratio_rejected_given_chosen", -0.5)]}


def test_srpo_errata_example_both_forms_b5():
    # g(y_w) = 0.1 * 0.4, g(y_l) = 0.1 * (-0.2)
    args = (seq([0.4]), seq([-0.2]), ones(1), ones(1), seq([0.0]), seq([0.0]))
    loss = get_preference_loss("srpo")(*args, beta=0.1, alpha=0.8, **SRPO_LR)
    assert loss.item() == pytest.approx(0.20562, abs=1e-6)
    b = 0.1   # the third-party (TRL PR #1772) form at p = 1
    self_improve = (0.5 - b * (3.0 - (-1.0))) ** 2 + (0.5 - b * (0.5 - (-0.5))) ** 2
    generative = (b * (3.0 + 0.4 - (-0.5) - (-0.2)) - 1) ** 2
    assert self_improve == pytest.approx(0.17) and generative == pytest.approx(0.3481)
    assert loss.item() == pytest.approx(0.8 * self_improve + 0.2 * generative, abs=1e-12)
    term_one = dict(SRPO_LR, logratio_rejected_given_chosen=torch.tensor([-5.0]),
                    logratio_chosen_given_chosen=torch.tensor([0.0]))
    assert get_preference_loss("srpo")(*args, beta=0.1, alpha=1.0, **term_one).item() == pytest.approx(0.01)
    with pytest.raises(ValueError, match="logratio_chosen_given_rejected"):
        get_preference_loss("srpo")(*args)


# ---------------------------------------------------------------- TRL 1.16 equality

class _Accelerator:
    device = torch.device("cpu")

    def gather(self, t):
        return t

    gather_for_metrics = gather


def trl_dpo_loss(chosen, rejected, cmask, rmask, ref_c, ref_r, loss_types, loss_weights=None, beta=0.1,
                 label_smoothing=0.0, f_divergence_type="reverse_kl", alpha_coef=0.5, ld_alpha=None,
                 log_sum_sq=None):
    """Run TRL 1.16's own DPOTrainer._compute_loss with a minimal trainer object. The 'model' returns the given
    per-token log-probs (what TRL's fused LM head returns for completion tokens); reference log-probs are
    passed precomputed, as with ``precompute_ref_log_probs=True``."""
    b, t = chosen.shape
    log_probs = torch.cat([chosen * cmask, rejected * rmask], 0)
    completion = torch.cat([torch.zeros(2 * b, 1, dtype=torch.long), torch.cat([cmask, rmask], 0)], 1)

    def model(**kwargs):
        zeros = torch.zeros(2 * b, t)
        return SimpleNamespace(log_probs=log_probs, entropy=zeros, mean_logits=zeros, log_sum_sq_probs=log_sum_sq,
                               is_top1=torch.zeros(2 * b, t, dtype=torch.bool))

    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=_Accelerator(), aux_loss_enabled=False, ld_alpha=ld_alpha,
        precompute_ref_logps=True, f_divergence_type=f_divergence_type, f_alpha_divergence_coef=alpha_coef,
        loss_types=loss_types, loss_weights=loss_weights or [1.0] * len(loss_types), beta=beta,
        label_smoothing=label_smoothing, args=SimpleNamespace(discopop_tau=0.05), use_weighting=log_sum_sq is not None,
        _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0, _tp_size=1)
    inputs = {"input_ids": torch.zeros(2 * b, t + 1, dtype=torch.long), "attention_mask": torch.ones(2 * b, t + 1),
              "completion_mask": completion, "ref_chosen_logps": ref_c, "ref_rejected_logps": ref_r}
    return trl_dpo.DPOTrainer._compute_loss(trainer, model, inputs, False), trainer._metrics["train"]


def random_pairs(seed, b=6, t=7):
    gen = torch.Generator().manual_seed(seed)
    chosen = -torch.rand(b, t, generator=gen, dtype=torch.float64) * 2
    rejected = -torch.rand(b, t, generator=gen, dtype=torch.float64) * 2
    ref_c_tok = chosen + 0.3 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    ref_r_tok = rejected + 0.3 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    lengths_c = torch.randint(1, t + 1, (b,), generator=gen)
    lengths_r = torch.randint(1, t + 1, (b,), generator=gen)
    cmask = (torch.arange(t) < lengths_c.unsqueeze(1)).long()
    rmask = (torch.arange(t) < lengths_r.unsqueeze(1)).long()
    return chosen, rejected, cmask, rmask, ref_c_tok, ref_r_tok


def hparams_for(loss_type):
    return {"exo_pair": 1e-3, "robust": 0.1, "aot": 0.05, "aot_unpaired": 0.05}.get(loss_type, 0.0)


@pytest.mark.parametrize("loss_type", TRL_TYPES)
def test_matches_trl_dpo_compute_loss(loss_type):
    chosen, rejected, cmask, rmask, ref_c_tok, ref_r_tok = random_pairs(TRL_TYPES.index(loss_type))
    eps = hparams_for(loss_type)
    ref_c, ref_r = (ref_c_tok * cmask).sum(1), (ref_r_tok * rmask).sum(1)
    theirs_c = chosen.clone().requires_grad_(True)
    theirs, _ = trl_dpo_loss(theirs_c, rejected, cmask, rmask, ref_c, ref_r, [loss_type], beta=0.1,
                             label_smoothing=eps)
    ours_c = chosen.clone().requires_grad_(True)
    ours = get_preference_loss(loss_type)(ours_c, rejected, cmask, rmask, ref_c_tok, ref_r_tok, beta=0.1,
                                          label_smoothing=eps)
    assert ours.shape == (6,)
    torch.testing.assert_close(ours.mean(), theirs, atol=1e-5, rtol=0)
    theirs.backward()
    ours.mean().backward()
    torch.testing.assert_close(ours_c.grad, theirs_c.grad, atol=1e-5, rtol=0)
    if loss_type not in BATCH_LEVEL:      # per pair: TRL on each pair alone
        for i in range(6):
            one, _ = trl_dpo_loss(chosen[i:i + 1], rejected[i:i + 1], cmask[i:i + 1], rmask[i:i + 1], ref_c[i:i + 1],
                                  ref_r[i:i + 1], [loss_type], beta=0.1, label_smoothing=eps)
            torch.testing.assert_close(ours[i].detach(), one, atol=1e-5, rtol=0)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge", "sigmoid_norm", "apo_zero"])
def test_ld_alpha_and_wpo_weighting_match_trl(loss_type):
    """TRL's ld_alpha (LD-DPO) and use_weighting (WPO) against weighted_preference_losses; TRL receives the
    reference log-probs precomputed, length-desensitised the way its reference pass computes them."""
    from veripo.algos import weighted_preference_losses

    chosen, rejected, cmask, rmask, ref_c_tok, ref_r_tok = random_pairs(40 + TRL_TYPES.index(loss_type))
    b, t = chosen.shape
    alpha = 0.4
    shared = torch.minimum(cmask.sum(1), rmask.sum(1))

    def ld_sum(tokens, mask):  # sum over the first `shared` real tokens + alpha * the rest, written out by hand
        return torch.stack([sum(tokens[i, j] * (1.0 if j < shared[i] else alpha) for j in range(t) if mask[i, j])
                            for i in range(b)])

    log_sum_sq = -torch.rand(2 * b, t, generator=torch.Generator().manual_seed(3), dtype=torch.float64) - 0.5
    theirs_c = chosen.clone().requires_grad_(True)
    theirs, _ = trl_dpo_loss(theirs_c, rejected, cmask, rmask, ld_sum(ref_c_tok, cmask), ld_sum(ref_r_tok, rmask),
                             [loss_type], ld_alpha=alpha, log_sum_sq=log_sum_sq)
    ours_c = chosen.clone().requires_grad_(True)
    ours = weighted_preference_losses(get_preference_loss(loss_type), ours_c, rejected, cmask, rmask, ref_c_tok,
                                      ref_r_tok, ld_alpha=alpha, log_sum_sq=log_sum_sq, beta=0.1)
    torch.testing.assert_close(ours.mean(), theirs, atol=1e-5, rtol=0)
    ours.mean().backward()
    if loss_type == "hinge":  # TRL 1.16 multiplies relu's output in place (`per_sequence_loss *= ...`): its
        with pytest.raises(RuntimeError, match="inplace operation"):  # backward fails; ours has a gradient
            theirs.backward()
        assert ours_c.grad.abs().sum() > 0
        return
    theirs.backward()
    torch.testing.assert_close(ours_c.grad, theirs_c.grad, atol=1e-5, rtol=0)


def test_length_desensitized_and_wpo_weights_by_hand():
    from veripo.algos import length_desensitized_weights, wpo_weights
    from veripo.algos.preference_weighting import check_weighting

    cm, rm = torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 1, 1, 1]])
    w_c, w_r = length_desensitized_weights(cm, rm, 0.5)
    assert w_c.tolist() == [[1, 1, 0, 0]] and w_r.tolist() == [[1, 1, 0.5, 0.5]]
    # uniform over V tokens: log p = log sum p^2 = -log V -> weight 1; a sampled token likelier than the
    # distribution's "self-probability" sum p^2 gets a weight above 1
    v = 8.0
    flat = wpo_weights(torch.full((1, 3), -math.log(v)), torch.full((1, 3), -math.log(v)), torch.ones(1, 3))
    assert flat.item() == pytest.approx(1.0)
    peaked = wpo_weights(torch.tensor([[math.log(0.9)]]), torch.tensor([[math.log(0.9 ** 2 + 0.1 ** 2)]]),
                         torch.ones(1, 1))
    assert peaked.item() == pytest.approx(0.9 / 0.82)
    with pytest.raises(ValueError, match="sort the batch"):
        check_weighting(["sigmoid", "aot"], True)
    with pytest.raises(ValueError, match="ld_alpha must be in"):
        check_weighting(["sigmoid"], False, 1.5)


@pytest.mark.parametrize("divergence", ["forward_kl", "js_divergence", "alpha_divergence"])
@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "discopop"])
def test_matches_trl_f_divergences(divergence, loss_type):
    chosen, rejected, cmask, rmask, ref_c_tok, ref_r_tok = (x.float() if x.is_floating_point() else x
                                                            for x in random_pairs(11))   # TRL: no float64 here
    ref_c, ref_r = (ref_c_tok * cmask).sum(1), (ref_r_tok * rmask).sum(1)
    theirs, _ = trl_dpo_loss(chosen, rejected, cmask, rmask, ref_c, ref_r, [loss_type], f_divergence_type=divergence,
                             alpha_coef=0.3)
    ours = get_preference_loss(loss_type)(chosen, rejected, cmask, rmask, ref_c, ref_r, f_divergence_type=divergence,
                                          f_alpha_divergence_coef=0.3)
    torch.testing.assert_close(ours.mean(), theirs, atol=1e-5, rtol=0)


def test_combination_matches_trl_loss_weights_and_metrics():
    chosen, rejected, cmask, rmask, ref_c_tok, ref_r_tok = random_pairs(5)
    ref_c, ref_r = (ref_c_tok * cmask).sum(1), (ref_r_tok * rmask).sum(1)
    theirs, metrics = trl_dpo_loss(chosen, rejected, cmask, rmask, ref_c, ref_r, ["sigmoid", "sft", "bco_pair"],
                                   [1.0, 0.3, 0.5])
    combined = combine_preference_losses(["sigmoid", "sft", "bco_pair"], [1.0, 0.3, 0.5])
    ours = combined(chosen, rejected, cmask, rmask, ref_c, ref_r, beta=0.1)
    torch.testing.assert_close(ours.mean(), theirs, atol=1e-5, rtol=0)
    assert combined.needs_reference
    assert not combine_preference_losses("simpo").needs_reference
    with pytest.raises(ValueError, match="weights"):
        combine_preference_losses(["sigmoid", "sft"], [1.0])
    rewards = implicit_rewards(chosen, rejected, cmask, rmask, ref_c_tok, ref_r_tok, beta=0.1)
    ours_metrics = preference_metrics(*rewards)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert ours_metrics[key] == pytest.approx(metrics[key][0], abs=1e-6), key


def test_implicit_rewards_without_reference_are_simpo_style():
    c, r = implicit_rewards(seq([-4.0]), seq([-6.0]), ones(1), ones(1), beta=2.0)
    assert c.item() == -8.0 and r.item() == -12.0


# ---------------------------------------------------------------- gradients and edge cases

def _extra_hparams(name):
    b = 3
    return {
        "tgdpo": dict(chosen_token_guidance=torch.full((b, 4), 0.3), rejected_token_guidance=torch.full((b, 4), -0.3)),
        "smpo": dict(preference_prob=torch.full((b,), 0.8)),
        "srpo": {k: torch.zeros(b) for k in SRPO_LR},
        "exo_pair": dict(label_smoothing=1e-3),
        "robust": dict(label_smoothing=0.1),
    }.get(name, {})


@pytest.mark.parametrize("name", sorted(set(TRL_TYPES) | {"cdpo", "simpo", "tgdpo", "smpo", "brain", "srpo"}))
def test_gradient_is_finite_and_favours_chosen(name):
    """At policy == reference, a descent step must raise the chosen log-prob relative to the rejected one.
    DiscoPOP (tau = 0.05) is non-monotone near a zero margin (its gradient there pushes the margin DOWN, as in
    TRL), so its toy point has a positive margin beta * Delta = 1."""
    start = -1.0 + (2.5 if name == "discopop" else 0.0)
    chosen = torch.full((3, 4), start, dtype=torch.float64, requires_grad=True)
    rejected = torch.full((3, 4), -1.0, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(3, 4, dtype=torch.long)
    ref = torch.full((3, 4), -1.0, dtype=torch.float64)
    loss = get_preference_loss(name)(chosen, rejected, mask, mask, ref, ref, **_extra_hparams(name))
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    loss.sum().backward()
    rejected_grad = torch.zeros_like(rejected) if rejected.grad is None else rejected.grad   # sft: chosen only
    assert torch.isfinite(chosen.grad).all() and torch.isfinite(rejected_grad).all()
    assert (chosen.grad.sum(1) < rejected_grad.sum(1)).all(), name


def test_padding_is_ignored_and_empty_completion_is_finite():
    chosen = torch.tensor([[-1.0, -2.0, 99.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0]])
    ref = torch.tensor([[-1.5, -2.0, -50.0]], dtype=torch.float64)
    padded = get_preference_loss("ipo")(chosen, chosen, mask, mask, ref, ref)
    trimmed = get_preference_loss("ipo")(chosen[:, :2], chosen[:, :2], mask[:, :2], mask[:, :2], ref[:, :2],
                                         ref[:, :2])
    torch.testing.assert_close(padded, trimmed)
    empty = torch.zeros(1, 3, dtype=torch.long)
    for name in ("simpo", "ipo", "sigmoid_norm", "sft"):
        assert torch.isfinite(get_preference_loss(name)(chosen, chosen, empty, empty, ref, ref)).all(), name


def test_invalid_label_smoothing_is_rejected():
    args = (seq([-1.0]), seq([-2.0]), ones(1), ones(1), seq([-1.0]), seq([-1.0]))
    with pytest.raises(ValueError, match="exo_pair"):
        get_preference_loss("exo_pair")(*args)
    with pytest.raises(ValueError, match="robust"):
        get_preference_loss("robust")(*args, label_smoothing=0.5)
