"""vLLM engine smoke test on a GPU (skipped without CUDA or without vLLM installed).

The tiny kit served by a colocated ``vllm.LLM``: G rollouts for 2 synthetic videos, log-probs aligned with the
tokens and matching the Hugging Face model's teacher-forced log-probs, then one weight sync after perturbing
the policy, after which vLLM's log-probs follow the new weights; then partial rollouts through token prompts: a
greedy head continued equals the one-shot greedy rollout, a tree of rollouts, ARRoL mid-generation pruning.
"""
import importlib.util

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")]


def hf_logps(model, engine, samples, groups):
    """Teacher-forced per-token log-probs of the completions under ``model`` (temperature 1), as lists."""
    from veripo.sequences import build_sequences, completion_logps

    flat = [c for g in groups for c in g]
    index = [i for i, g in enumerate(groups) for _ in g]
    batch = build_sequences(engine.prompt_batch(samples), index, [c.token_ids for c in flat],
                            engine.tokenizer.pad_token_id)
    device = next(model.parameters()).device
    batch.model_inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.model_inputs.items()}
    batch.completion_ids, batch.completion_mask = batch.completion_ids.to(device), batch.completion_mask.to(device)
    with torch.no_grad():
        logps, _ = completion_logps(model, batch, 1.0)
    return [logps[i, : len(c.token_ids)].float().cpu() for i, c in enumerate(flat)]


def mean_abs_diff(a, b):
    return float(torch.cat([x - torch.tensor(y) for x, y in zip(a, b)]).abs().mean())


def test_vllm_engine_rollouts_logprobs_and_weight_sync(tmp_path):
    import veripo  # noqa: F401  (torchvision shim first)
    from veripo.data.schema import load_samples
    from veripo.data.synthetic import SynthSpec, generate_task, task_corpus
    from veripo.models import build_tiny_kit
    from veripo.models.load import load_policy
    from veripo.generation.types import SamplingParams
    from veripo.rollout.vllm_engine import VLLMEngine
    from veripo.video.sampling import VideoSampling

    spec = SynthSpec(n_train=2, n_val=0, n_test=0)
    files = generate_task(tmp_path / "task", spec, progress=False)
    kit = build_tiny_kit(tmp_path / "kit", corpus=task_corpus(spec))
    samples = load_samples(files.splits["train"])
    assert len(samples) == 2 and all(s.data_type == "video" for s in samples)
    policy, processor = load_policy(kit, dtype="float32", device="cuda")

    engine = VLLMEngine(kit, VideoSampling(num_frames=8), processor=processor, gpu_memory_utilization=0.25,
                        dtype="bfloat16", max_model_len=1024, enforce_eager=True)
    G, T = 4, 24
    groups = engine.generate(samples, n=G, params=SamplingParams(temperature=1.0, max_new_tokens=T))
    assert len(groups) == 2 and all(len(g) == G for g in groups)
    for c in (c for g in groups for c in g):
        assert 1 <= len(c.token_ids) <= T and len(c.logps) == len(c.token_ids)
        assert all(lp <= 1e-4 for lp in c.logps) and c.finish_reason in ("stop", "length")
    # vLLM's sampled-token log-probs agree with the HF policy's (bf16 vs fp32 tolerance)
    assert mean_abs_diff(hf_logps(policy, engine, samples, groups), [c.logps for g in groups for c in g]) < 0.1

    # one "update": perturb every weight, push it into vLLM, and vLLM now follows the new policy
    with torch.no_grad():
        gen = torch.Generator(device="cuda").manual_seed(0)
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=gen, device=p.device) * 0.05)
    sent = engine.sync_weights(policy)
    assert sent == len(list(policy.named_parameters()))
    groups2 = engine.generate(samples, n=G, params=SamplingParams(temperature=1.0, max_new_tokens=T))
    flat2 = [c.logps for g in groups2 for c in g]
    assert mean_abs_diff(hf_logps(policy, engine, samples, groups2), flat2) < 0.1
    old_policy, _ = load_policy(kit, dtype="float32", device="cuda")
    assert mean_abs_diff(hf_logps(old_policy, engine, samples, groups2), flat2) > 0.1  # not the old weights

    # partial rollouts: a greedy head continued by vLLM is the one-shot greedy rollout (token prompts + video)
    from veripo.rollout.prune import PrefixPruner
    from veripo.rollout.tree import TreeShape, grow_trees

    greedy = SamplingParams(temperature=0.0, max_new_tokens=T)
    full = engine.generate(samples, n=1, params=greedy)
    batch = engine.partial_batch(samples)
    heads = engine.continue_from(batch, [0, 1], [[], []], 1, SamplingParams(temperature=0.0, max_new_tokens=5))
    unfinished = [i for i, (h,) in enumerate(heads) if h.finish_reason == "length"]
    tails = engine.continue_from(batch, unfinished, [heads[i][0].token_ids for i in unfinished], 1,
                                 SamplingParams(temperature=0.0, max_new_tokens=T - 5))
    for i, (tail,) in zip(unfinished, tails):
        assert heads[i][0].token_ids + tail.token_ids == full[i][0].token_ids
    trees = grow_trees(engine, samples, TreeShape((2, 2), 6), SamplingParams(temperature=1.0, max_new_tokens=T))
    for leaves in trees:
        assert 2 <= len(leaves) <= 4 and all(len(c.logps) == len(c.token_ids) == c.tree["cuts"][-1] for c in leaves)
    kept, pruned = PrefixPruner(0, mode="midgen", prefix_tokens=4).generate(
        engine, 0, samples, [G, G], SamplingParams(temperature=1.0, max_new_tokens=T))
    assert [len(k) for k in kept] == [G, G] and all(len(c.token_ids) <= 4 for p in pruned for c in p)
