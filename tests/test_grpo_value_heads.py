"""PDPPO's dual critic and PPO-GAE inside the GRPO stage: value heads on the policy's hidden states, GAE advantages
from them, a clipped value loss with its own optimiser, checkpointed and resumed with the policy."""
from __future__ import annotations

import pytest
import torch

from veripo.errors import ConfigError
from veripo.grpo.trainer import GRPOTrainer
from veripo.io_utils import read_jsonl

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import synth_task, task_kit, warm_policy  # noqa: F401
from test_grpo_trainer import grpo_cfg


def heads_tensors(trainer: GRPOTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.critic.heads.parameters()]


def test_hidden_states_are_those_that_predict_each_completion_token(warm_policy, synth_task, tmp_path):
    """The state value heads read for completion token t is the one whose logits give token t: the same forward's
    log-probs equal completion_logps, and the state of token 0 is the prompt's last position."""
    from veripo.sequences import build_sequences, completion_logps, completion_logps_and_states

    trainer = GRPOTrainer(grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run",
                                   "run.steps=1", "algo.advantage_estimator=pdppo"))
    samples = trainer.rows[:2]
    prompts = trainer.engine.prompt_batch(samples)
    pad = trainer.tokenizer.pad_token_id
    ids = trainer.tokenizer.encode("<think>the square is red</think>", add_special_tokens=False)
    seqs = build_sequences(prompts, [0, 1], [ids[:3], ids[3:5]], pad)
    with torch.no_grad():
        logps, states = completion_logps_and_states(trainer.model, seqs)
        plain, _ = completion_logps(trainer.model, seqs)
        prompt_out = trainer.model(**prompts.inputs, output_hidden_states=True, use_cache=False)
    assert states.shape == (2, 3, trainer.critic.heads.hidden_size)
    assert torch.allclose(logps, plain, atol=1e-6)
    assert torch.allclose(states[:, 0], prompt_out.hidden_states[-1][:, -1], atol=1e-4)


def test_pdppo_step_trains_both_heads_and_gives_token_level_gae(warm_policy, synth_task, tmp_path):
    from veripo.algos import get_advantage_estimator

    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run", "run.steps=1", "run.save_every=0",
                   "algo.advantage_estimator=pdppo", "algo.advantage_kwargs={whiten: false, lam: 1.0}")
    trainer = GRPOTrainer(cfg)
    assert trainer.critic.heads.num_heads == 2
    before = heads_tensors(trainer)
    seen = {}
    real = trainer.critic.update

    def spy(returns, mask, keep, epochs=1):
        seen.update(values=trainer.critic._values.clone(), returns=returns.clone(), mask=mask.clone())
        return real(returns, mask, keep, epochs)

    trainer.critic.update = spy
    metrics = trainer.step(0)
    for key in ("value/vf_loss", "value/vf_clipfrac", "value/vf_explained_var", "value/vf_grad_norm"):
        assert key in metrics and metrics[key] == metrics[key], key
    assert all(not torch.equal(b, a) for b, a in zip(before, heads_tensors(trainer)))
    # lam = 1, gamma = 1, no whitening: each head's return at every token is the rollout's reward (Monte Carlo)
    rollouts = read_jsonl(tmp_path / "run" / "rollouts.jsonl")
    rewards = torch.tensor([r["rewards"]["total"] for r in rollouts])
    mask = seen["mask"]
    for k in range(2):
        expected = rewards[:, None].expand_as(mask) * mask
        assert torch.allclose(seen["returns"][..., k], expected, atol=1e-5)
    # the stored per-rollout advantage is the token mean of pdppo's advantages on the same values
    direct = get_advantage_estimator("pdppo")(rewards, torch.arange(2).repeat_interleave(4),
                                              values=seen["values"][..., 0], values2=seen["values"][..., 1],
                                              response_mask=mask, whiten=False, lam=1.0)
    row_mean = (direct.advantages * mask).sum(1) / mask.sum(1)
    assert [r["advantage"] for r in rollouts] == pytest.approx(row_mean.tolist(), abs=1e-5)


def test_value_heads_resume_as_if_never_killed(warm_policy, synth_task, tmp_path, monkeypatch):
    """Killed before step 2's update (checkpoint at step 2) and resumed: the final value heads equal an
    uninterrupted run's, and final/ holds them."""
    from veripo.models.value_heads import load_value_heads

    def cfg(out):
        return grpo_cfg(warm_policy, synth_task / "train.jsonl", out, "run.steps=3", "run.save_every=2",
                        "algo.advantage_estimator=ppo_gae")

    straight = GRPOTrainer(cfg(tmp_path / "straight"))
    straight.train()
    killed = GRPOTrainer(cfg(tmp_path / "killed"))
    real, calls = killed._update, []

    def crash_on_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(killed, "_update", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    resumed = GRPOTrainer(cfg(tmp_path / "killed"))
    resumed.train(resume=True)
    for a, b in zip(heads_tensors(straight), heads_tensors(resumed)):
        assert torch.allclose(a, b, atol=1e-6)
    hidden = straight.critic.heads.hidden_size
    saved = load_value_heads(tmp_path / "killed" / "final", hidden_size=hidden)
    for a, b in zip(saved.parameters(), resumed.critic.heads.parameters()):
        assert torch.equal(a, b)


def test_value_estimators_refuse_several_processes_with_a_clear_error(warm_policy, synth_task, tmp_path):
    from veripo.grpo.trainer import check_world

    cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / "run", "algo.advantage_estimator=pdppo")
    with pytest.raises(ConfigError, match="one process"):
        check_world(cfg, 2)


def test_value_heads_config_rules_fail_before_any_model_is_loaded(tmp_path):
    from veripo.config import load_config
    from veripo.grpo.config import GRPOConfig

    for bad, match in (("algo.value_heads.lr=0", "lr"), ("algo.value_heads.value_clip=-1", "value_clip"),
                       ("algo.value_heads.loss_agg_mode=sum", "loss_agg_mode")):
        with pytest.raises(ConfigError, match=match):
            load_config(GRPOConfig, None, ["algo.advantage_estimator=pdppo", bad])
