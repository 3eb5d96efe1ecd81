"""Sol-RL's cheap CPU engine: an int8 dynamically quantised copy of the tiny policy (forward and HF-engine sampling)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from kit_fixtures import tiny_kit_dir  # noqa: F401


@pytest.fixture(scope="module")
def policy(tiny_kit_dir):  # noqa: F811
    from veripo.models.load import load_policy

    return load_policy(tiny_kit_dir)


def _logps(model, ids):
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    return torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def test_int8_copy_is_close_to_but_not_the_full_model(policy):
    from veripo.algos import truncated_is_weights
    from veripo.rollout.quantized import quantized_copy, quantized_linear_count

    model, _ = policy
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    cheap = quantized_copy(model)
    assert quantized_linear_count(cheap) == n_linear > 0
    assert quantized_linear_count(model) == 0                     # the policy itself is untouched
    assert not any(p.requires_grad for p in cheap.parameters())
    ids = torch.randint(5, 400, (3, 16), generator=torch.Generator().manual_seed(0))
    full, low = _logps(model, ids), _logps(cheap, ids)
    diff = (full - low).abs()
    assert float(diff.max()) > 0                                  # not equal ...
    assert float(diff.mean()) < 0.05 and float(diff.max()) < 0.5  # ... but close (measured: mean 0.007, max 0.03)
    w = truncated_is_weights(full, low, torch.ones_like(full), cap=3.0)
    assert torch.allclose(w, torch.ones_like(w), atol=0.7) and not torch.equal(w, torch.ones_like(w))


def test_skip_keeps_the_output_layer_in_float(policy):
    from veripo.rollout.quantized import quantized_copy

    model, _ = policy
    cheap = quantized_copy(model, skip=("lm_head",))
    assert isinstance(cheap.lm_head, nn.Linear) and cheap.lm_head.weight.dtype == torch.float32


def test_a_model_off_the_cpu_is_refused(policy, monkeypatch):
    from veripo.rollout import quantized

    monkeypatch.setattr(quantized, "_on_cpu", lambda model: False)
    with pytest.raises(quantized.QuantizationError, match="CPU only"):
        quantized.quantized_copy(policy[0])


@pytest.mark.slow
def test_int8_copy_samples_through_the_hf_engine():
    from train_fixtures import VIDEO_DICT, task_kit_once, task_once

    from veripo.data.schema import load_samples
    from veripo.models.load import load_policy
    from veripo.rollout.hf_engine import HFEngine
    from veripo.rollout.quantized import quantized_copy
    from veripo.generation.types import SamplingParams
    from veripo.video.sampling import VideoSampling

    model, processor = load_policy(task_kit_once())
    samples = load_samples(task_once() / "val.jsonl")[:2]
    engine = HFEngine(quantized_copy(model), processor, VideoSampling(**VIDEO_DICT), batch_size=2)
    groups = engine.generate(samples, n=3, params=SamplingParams(temperature=1.0, max_new_tokens=12))
    assert [len(g) for g in groups] == [3, 3]
    for c in (c for g in groups for c in g):
        assert 1 <= len(c.token_ids) <= 12 and len(c.logps) == len(c.token_ids)
        assert all(lp <= 0 for lp in c.logps)
