"""Shared-prompt training forwards (veripo/prompt_sharing.py): each distinct prompt of a micro-batch runs once and
its completions continue from its key/value cache. The log-probs, entropies and gradients must be those of the
plain forward over every ``prompt + completion`` row, for video rows (Qwen2.5-VL's 3-D positions) and text rows,
in any row order (DPO's chosen and rejected rows of a pair are a batch apart), and a GRPO / DPO step must train
the same weights with it on or off."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from veripo.grpo.trainer import GRPOTrainer
from veripo.io_utils import read_jsonl
from veripo.prompt_batch import build_prompt_batch
from veripo.prompt_sharing import can_share_prompts
from veripo.sequences import build_sequences, completion_logps

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import synth_task, task_kit, warm_policy  # noqa: F401
from test_dpo_trainer import dpo_cfg, write_pairs
from test_grpo_trainer import grpo_cfg

TEXTS = ["<think>the square is red</think><answer>A</answer>", "<think>blue", "<think>it is green so</think>", "x"]


def logps_and_grads(model, batch, micro_batch_size=None):
    model.zero_grad()
    logps, entropy = completion_logps(model, batch, 0.9, micro_batch_size, with_entropy=True)
    (logps * torch.linspace(0.5, 1.5, logps.shape[1])).sum().backward()  # position-dependent: order matters
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return logps.detach(), entropy, grads


@pytest.fixture(scope="module")
def trainer(warm_policy, synth_task, tmp_path_factory):
    return GRPOTrainer(grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path_factory.mktemp("share") / "run",
                                "run.steps=1"))


@pytest.mark.parametrize("kind", ["video", "text"])
@pytest.mark.parametrize("micro_batch_size", [None, 3])
def test_shared_prompt_forward_gives_the_plain_forwards_logps_and_gradients(trainer, kind, micro_batch_size):
    samples = trainer.rows[:3]
    if kind == "text":
        samples = [dataclasses.replace(s, data_type="text", path=None) for s in samples]
    prompts = build_prompt_batch(trainer.processor, samples, trainer.engine.frame_cache, trainer.cfg.video)
    assert ("pixel_values_videos" in prompts.inputs) == (kind == "video")
    tok = trainer.tokenizer
    completions = [tok.encode(t, add_special_tokens=False) for t in TEXTS]
    index = [1, 0, 2, 1]  # rows of one prompt apart, as DPO's chosen and rejected are
    plain = logps_and_grads(trainer.model, build_sequences(prompts, index, completions, tok.pad_token_id),
                            micro_batch_size)
    shared_batch = build_sequences(prompts, index, completions, tok.pad_token_id, share_prompts=True)
    assert can_share_prompts(trainer.model, shared_batch.model_inputs)
    shared = logps_and_grads(trainer.model, shared_batch, micro_batch_size)
    assert plain[0].abs().sum() > 1.0  # real log-probs, not a zero tensor on both sides
    for a, b in zip(plain, shared):
        assert torch.allclose(a, b, atol=2e-5, rtol=1e-5), (a - b).abs().max()


def test_gradient_checkpointing_falls_back_to_the_plain_forward(trainer):
    prompts = trainer.engine.prompt_batch(trainer.rows[:1])
    batch = build_sequences(prompts, [0, 0], [[5, 6], [7]], trainer.tokenizer.pad_token_id, share_prompts=True)
    assert can_share_prompts(trainer.model, batch.model_inputs)
    trainer.model.gradient_checkpointing_enable()
    try:
        assert not can_share_prompts(trainer.model, batch.model_inputs)  # the cache would be switched off
        logps, _ = completion_logps(trainer.model, batch)
        assert logps.shape == (2, 2) and torch.isfinite(logps).all()
    finally:
        trainer.model.gradient_checkpointing_disable()


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_a_grpo_step_trains_the_same_weights_with_and_without_sharing(warm_policy, synth_task, tmp_path):
    runs = {}
    for share in ("true", "false"):
        cfg = grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path / share, "run.steps=2", "run.save_every=0",
                       "optim.eps=1e-2", "optim.micro_batch_size=3", f"optim.share_prompts={share}")
        t = GRPOTrainer(cfg)
        start = weights(t.model)
        t.train()
        runs[share] = (start, weights(t.model), read_jsonl(tmp_path / share / "metrics.jsonl"))
    (s1, w1, m1), (s0, w0, m0) = runs["true"], runs["false"]
    assert torch.equal(s1, s0)
    assert (w1 - s1).abs().max() > 1e-4  # the step trained
    assert torch.allclose(w1, w0, atol=1e-6), (w1 - w0).abs().max()
    for a, b in zip(m1, m0):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)


def test_dpo_losses_are_the_same_with_and_without_sharing(warm_policy, synth_task, tmp_path):
    from veripo.dpo.trainer import DPOTrainer

    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=4)
    out = {}
    for share in ("true", "false"):
        t = DPOTrainer(dpo_cfg(warm_policy, pairs, tmp_path / share, "batch_size=4", "optim.micro_batch_size=4",
                               "heldout_fraction=0", f"optim.share_prompts={share}"))
        t.out.mkdir(parents=True, exist_ok=True)
        t._reference_pass()
        batch_pairs = t.train_pairs[:4]
        loss, metrics = t.pair_losses(batch_pairs)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in t.model.parameters() if p.grad is not None])
        out[share] = (loss.detach(), metrics, grads)
    (l1, m1, g1), (l0, m0, g0) = out["true"], out["false"]
    assert torch.allclose(l1, l0, atol=1e-6)
    assert m1["logps/chosen"] == pytest.approx(m0["logps/chosen"], abs=1e-4)
    assert m1["logps/rejected"] != pytest.approx(m1["logps/chosen"], abs=1e-3)  # the sides are not mixed up
    assert torch.allclose(g1, g0, atol=2e-5), (g1 - g0).abs().max()


def test_select_cache_rows_matches_transformers_batch_select_indices_in_values_and_gradients(trainer):
    """The cache's rows gathered with index_select (fast backward) hold what transformers' own
    ``batch_select_indices`` gives, and send the same gradients back into the prompt forward."""
    from veripo.models.kv_cache import output_cache, select_cache_rows

    model = trainer.model
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]])
    index = torch.tensor([2, 0, 0, 1, 2])
    results = []
    for select in (lambda c: c.batch_select_indices(index), lambda c: select_cache_rows(c, index)):
        model.zero_grad()
        cache = output_cache(model(input_ids=ids, use_cache=True))
        select(cache)
        keys = [layer.keys for layer in cache.layers]
        op = keys[0].grad_fn.name()
        sum(((k * torch.linspace(0.1, 2.0, k.shape[-1])) ** 2).sum() for k in keys).backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results.append((op, torch.cat([k.detach().flatten() for k in keys]), grads))
    (ref_op, k_ref, g_ref), (our_op, k_ours, g_ours) = results
    assert our_op.startswith("IndexSelect") and not ref_op.startswith("IndexSelect")  # the fast path ran
    assert k_ours.shape == k_ref.shape and g_ref.abs().sum() > 0
    assert torch.equal(k_ours, k_ref)
    assert torch.allclose(g_ours, g_ref, atol=1e-6, rtol=1e-5)
