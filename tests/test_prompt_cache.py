"""The prompt cache (veripo/prompt_cache.py): prompts merged from kept tensors must be exactly what the processor
returns for the same samples at once (left padding, video patches, grids, second_per_grid_ts), the processor must
not run again for a kept prompt, the byte budget must hold, and a DPO stage must train the same weights with the
cache on or off."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from veripo.data.schema import load_samples
from veripo.dpo.trainer import DPOTrainer
from veripo.models.load import load_processor
from veripo.prompt_batch import build_prompt_batch
from veripo.prompt_cache import PromptCache, _nbytes, merge_prompt_batches, split_prompt_batch
from veripo.video.cache import FrameCache

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO, synth_task, task_kit, warm_policy  # noqa: F401
from test_dpo_trainer import dpo_cfg, write_pairs


class CountingProcessor:
    """The real processor, counting the prompts it processes."""

    def __init__(self, processor):
        self.inner, self.prompts = processor, 0

    def __call__(self, *a, **k):
        self.prompts += len(k["text"])
        return self.inner(*a, **k)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def mixed_samples(synth_task):
    """Video, text, video, text: prompts of different lengths, so that merging must left-pad."""
    rows = load_samples(synth_task / "train.jsonl")[:4]
    rows[1] = dataclasses.replace(rows[1], data_type="text", path=None, problem=rows[1].problem + " Think twice.")
    rows[3] = dataclasses.replace(rows[3], data_type="text", path=None)
    return rows


def assert_same_inputs(a, b):
    assert set(a.inputs.keys()) == set(b.inputs.keys())
    for key in a.inputs:
        assert torch.equal(torch.as_tensor(a.inputs[key]), torch.as_tensor(b.inputs[key])), key
    assert (a.texts, a.videos_per_prompt, a.images_per_prompt) == (b.texts, b.videos_per_prompt, b.images_per_prompt)


def test_merged_single_prompts_equal_the_processors_batch(task_kit, mixed_samples):
    processor, frames = load_processor(task_kit), FrameCache()
    joint = build_prompt_batch(processor, mixed_samples, frames)
    widths = {int(build_prompt_batch(processor, [s], frames).inputs["input_ids"].shape[1]) for s in mixed_samples}
    assert len(widths) > 1 and "pixel_values_videos" in joint.inputs  # padding and video patches are exercised
    singles = [build_prompt_batch(processor, [s], frames) for s in mixed_samples]
    assert_same_inputs(merge_prompt_batches(singles, processor.tokenizer.pad_token_id), joint)
    split = split_prompt_batch(joint)
    assert [int(b.inputs["attention_mask"].sum()) for b in split] == joint.inputs["attention_mask"].sum(1).tolist()
    assert all(bool(b.inputs["attention_mask"].all()) for b in split)  # padding stripped
    reordered = [split[i] for i in (2, 0, 3, 1)]
    assert_same_inputs(merge_prompt_batches(reordered, processor.tokenizer.pad_token_id),
                       build_prompt_batch(processor, [mixed_samples[i] for i in (2, 0, 3, 1)], frames))


def test_merge_refuses_a_key_it_does_not_know(task_kit, mixed_samples):
    processor = load_processor(task_kit)
    batch = build_prompt_batch(processor, mixed_samples[:1], FrameCache())
    batch.inputs["rope_deltas"] = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="rope_deltas"):
        merge_prompt_batches([batch], 0)


def test_cache_processes_each_prompt_once_and_returns_the_processors_batch(task_kit, mixed_samples):
    processor, frames = load_processor(task_kit), FrameCache()
    counting = CountingProcessor(processor)
    cache = PromptCache(counting, frames)
    keys = ["a", "b", "c", "d"]
    first = cache.batch(keys[:2], mixed_samples[:2])
    assert counting.prompts == 2 and len(cache) == 2
    mixed = cache.batch(["c", "a", "d", "b", "a"], [mixed_samples[i] for i in (2, 0, 3, 1, 0)])
    assert counting.prompts == 4  # only c and d went through the processor
    assert (cache.hits, cache.misses) == (3, 4)
    assert_same_inputs(first, build_prompt_batch(processor, mixed_samples[:2], frames))
    assert_same_inputs(mixed, build_prompt_batch(processor, [mixed_samples[i] for i in (2, 0, 3, 1, 0)], frames))


def test_cache_keeps_to_its_byte_budget_least_recently_used_out_first(task_kit, mixed_samples):
    processor, frames = load_processor(task_kit), FrameCache()
    video = [mixed_samples[0], mixed_samples[2], mixed_samples[0]]
    size = _nbytes(build_prompt_batch(processor, video[:1], frames))
    counting = CountingProcessor(processor)
    cache = PromptCache(counting, frames, max_bytes=int(size * 1.5))  # room for one video prompt
    cache.batch(["v0"], video[:1])
    cache.batch(["v1"], video[1:2])
    assert len(cache) == 1 and cache._bytes <= cache.max_bytes
    cache.batch(["v0"], video[2:])  # v0 went out when v1 came in: processed again
    assert counting.prompts == 3
    off = PromptCache(CountingProcessor(processor), frames, max_bytes=0)
    off.batch(["v0"], video[:1])
    off.batch(["v0"], video[:1])
    assert len(off) == 0 and off.processor.prompts == 2


def test_dpo_stage_trains_the_same_weights_with_the_prompt_cache_on_or_off(warm_policy, synth_task, tmp_path):
    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=8)
    weights, hits = {}, {}
    for mb in (1024, 0):
        cfg = dpo_cfg(warm_policy, pairs, tmp_path / f"run{mb}", "batch_size=4", "epochs=1", "heldout_fraction=0.25",
                      "optim.lr=1e-3", f"prompt_cache_mb={mb}", "run.seed=3")
        trainer = DPOTrainer(cfg)
        trainer.train()
        weights[mb] = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        hits[mb] = trainer.prompts.hits
    assert hits[1024] > 0 and hits[0] == 0  # the reference pass filled it, training and held-out margins read it
    assert torch.allclose(weights[1024], weights[0], atol=1e-6)


def test_sft_trains_the_same_weights_with_the_prompt_cache_on_or_off(task_kit, synth_task, tmp_path):
    from veripo.config import load_config
    from veripo.sft import SFTConfig, SFTTrainer

    weights, hits = {}, {}
    for mb in (1024, 0):
        cfg = load_config(SFTConfig, None, [f"model.path={task_kit}", "model.freeze_vision=false",
                                            f"train_file={synth_task / 'train.jsonl'}", f"run.out_dir={tmp_path / str(mb)}",
                                            "run.steps=5", "batch_size=16", "optim.lr=2e-3", f"prompt_cache_mb={mb}",
                                            *VIDEO])
        trainer = SFTTrainer(cfg)
        trainer.train()
        weights[mb] = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        hits[mb] = trainer.prompts.hits
    assert hits[1024] >= 16 * 3 and hits[0] == 0  # 32 rows, 16 a step: steps 3-5 read kept prompts
    assert torch.allclose(weights[1024], weights[0], atol=1e-6)


class ExtraKeyProcessor(CountingProcessor):
    """The real processor, adding an output key the merge does not know (as a future processor might)."""

    def __call__(self, *a, **k):
        out = super().__call__(*a, **k)
        out["token_type_ids"] = torch.zeros_like(out["input_ids"])
        return out


def test_a_processor_key_the_merge_cannot_carry_turns_the_cache_off(task_kit, mixed_samples):
    cache = PromptCache(ExtraKeyProcessor(load_processor(task_kit)), FrameCache())
    for keys, rows in ((["a", "b"], mixed_samples[:2]), (["a", "c"], [mixed_samples[0], mixed_samples[2]])):
        batch = cache.batch(keys, rows)
        assert "token_type_ids" in batch.inputs and batch.inputs["token_type_ids"].shape == batch.inputs["input_ids"].shape
    assert cache.disabled and len(cache) == 0


def test_a_batch_keeps_its_own_hits_when_new_rows_push_the_oldest_out(task_kit, mixed_samples):
    processor, frames = load_processor(task_kit), FrameCache()
    text = [s for s in mixed_samples if s.data_type == "text"]
    size = max(_nbytes(build_prompt_batch(processor, [s], frames)) for s in text)
    cache = PromptCache(processor, frames, max_bytes=int(size * 2.5))  # room for two text prompts
    cache.batch(["a"], text[:1])
    cache.batch(["b"], text[1:2])
    cache.batch(["a", "c"], [text[0], text[1]])  # a is used again: b, the least recently used, goes
    assert list(cache._rows) == ["a", "c"]
