"""Sampling G completions per prompt from one prefill per prompt (veripo/generation/shared_prefill.py): the same
completions (tokens and log-probs) as ``generate(num_return_sequences=G)`` from the same random stream, for video
rows (Qwen2.5-VL's 3-D position offsets) and text rows, in either order (the model keeps those offsets between
calls), and the hidden-state capture sees only decode steps."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from veripo.generation.hf import sample_completions
from veripo.generation.shared_prefill import can_share_prefill
from veripo.generation.types import SamplingParams
from veripo.grpo.trainer import GRPOTrainer

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import synth_task, task_kit, warm_policy  # noqa: F401
from test_grpo_trainer import grpo_cfg


@pytest.fixture(scope="module")
def trainer(warm_policy, synth_task, tmp_path_factory):
    return GRPOTrainer(grpo_cfg(warm_policy, synth_task / "train.jsonl", tmp_path_factory.mktemp("prefill") / "run",
                                "run.steps=1"))


def sample(trainer, kind, share, temperature=1.0, capture_hidden=False):
    samples = trainer.rows[:3]
    # rows with different frame counts have different 3-D position offsets (one per prompt, not one per batch)
    samples = [dataclasses.replace(samples[0], video_options={"nframes": 4}), *samples[1:]]
    if kind == "text":
        samples = [dataclasses.replace(s, data_type="text", path=None) for s in samples]
    inputs = trainer.engine.prompt_batch(samples).inputs
    assert can_share_prefill(trainer.model, inputs, 4)
    torch.manual_seed(11)
    return sample_completions(trainer.model, trainer.tokenizer, inputs, 4,
                              SamplingParams(temperature=temperature, max_new_tokens=24), capture_hidden,
                              share_prefill=share)


@pytest.mark.parametrize("order", [("video", "text"), ("text", "video")])
def test_shared_prefill_samples_the_plain_calls_completions(trainer, order):
    for kind in order:  # shared calls back to back: a stale offset from the other kind must not leak
        shared = sample(trainer, kind, True)
        plain = sample(trainer, kind, False)
        assert len(shared) == len(plain) == 12
        if kind == "video":
            deltas = trainer.model.model.rope_deltas.flatten().tolist()
            assert len(set(deltas)) > 1, deltas
        assert len({tuple(c.token_ids) for c in plain}) > 3  # real sampling, not one repeated answer
        for a, b in zip(shared, plain):
            assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason
            assert a.logps == pytest.approx(b.logps, abs=1e-5)


def test_shared_prefill_keeps_the_hidden_states_of_the_decode_steps(trainer):
    shared = sample(trainer, "video", True, 0.7, capture_hidden=True)
    plain = sample(trainer, "video", False, 0.7, capture_hidden=True)
    for a, b in zip(shared, plain):
        assert a.token_ids == b.token_ids
        assert torch.allclose(a.features, b.features, atol=1e-4)


def test_one_sample_per_prompt_is_left_to_the_plain_call(trainer):
    inputs = trainer.engine.prompt_batch(trainer.rows[:2]).inputs
    assert not can_share_prefill(trainer.model, inputs, 1)


@pytest.mark.parametrize("text", ["<think>red</think><answer>A</answer>", "<answer>B</answer>>< more text",
                                  "no answer here > at all", "<answer>C</answer></answer>"])
def test_stop_after_text_stops_where_a_full_decode_first_holds_the_text(trainer, text):
    """The stop criterion reads only rows whose last token could complete ``</answer>``; it must stop at the same
    token as decoding every prefix would."""
    from veripo.generation.hf import StopAfterText

    tok = trainer.tokenizer
    ids = tok.encode(text, add_special_tokens=False)
    prompt = [tok.pad_token_id] * 3
    stop = StopAfterText(tok, "</answer>", len(prompt))
    expected = next((k + 1 for k in range(len(ids)) if "</answer>" in tok.decode(ids[: k + 1])), None)
    got = None
    for k in range(1, len(ids) + 1):
        row = torch.tensor([prompt + ids[:k], prompt + ids[:1] * k])  # a second row that never stops
        done = stop(row, torch.zeros(2, 4))
        assert not done[1]
        if done[0] and got is None:
            got = k
    assert got == expected and stop.stopped_at.get(0) == expected
