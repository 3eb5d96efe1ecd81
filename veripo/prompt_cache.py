"""Processed prompts kept across steps: a prompt seen again is merged from its tensors, not rebuilt.

A DPO stage reads each pair's prompt several times -- its reference pass, the held-out margins before and after,
and once per epoch in training -- and ``build_prompt_batch`` (chat template, frame cache, processor) costs each time
what it cost the first (~9% of a DPO step on the tiny kit, text only). TRL tokenizes its data set once, before
training; :class:`PromptCache` gives veripo the same, for videos too:

    batch(keys, samples) == build_prompt_batch(processor, samples, ...)     (same tensors, same left padding)

Rows are kept one prompt each (left padding stripped) and merged by :func:`merge_prompt_batches`; the cache holds
at most ``max_bytes`` of tensors and lets the least recently used prompts go first (a real video prompt's
``pixel_values_videos`` is tens of MB; once the data set is larger than the budget, a reshuffled epoch finds
about budget / data set of its prompts). A processor that returns a key the merge does not know turns the cache
off (with a warning) rather than serve batches without it.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Sequence

import torch
from transformers import BatchFeature

from veripo.data.schema import Sample
from veripo.prompt_batch import PromptBatch, build_prompt_batch
from veripo.sequences import TOKEN_KEYS, select_prompts
from veripo.video.cache import FrameCache
from veripo.video.sampling import VideoSampling

DEFAULT_MB = 1024
CONFIG_DOC = ("Processed prompts (tokens, video patches) kept in memory across steps and epochs, so each row's prompt "
              "goes through the chat template and the processor once; least recently used out first; 0 = rebuild "
              "every time.")
VISUAL_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "pixel_values", "image_grid_thw")
log = logging.getLogger(__name__)


def merge_prompt_batches(batches: Sequence[PromptBatch], pad_token_id: int) -> PromptBatch:
    """One left-padded batch of all the prompts of ``batches`` in order, visual tensors concatenated: what the
    processor returns for all their samples at once. Raises ``ValueError`` on a key it does not know how to merge."""
    if not batches:
        raise ValueError("merge_prompt_batches: no batches")
    keys = set().union(*(b.inputs.keys() for b in batches))
    unknown = _unmergeable(keys)
    if unknown:
        raise ValueError(f"merge_prompt_batches: cannot merge processor output(s) {sorted(unknown)}")
    width = max(int(b.inputs["input_ids"].shape[1]) for b in batches)
    merged: dict[str, torch.Tensor] = {}
    for key in (k for k in TOKEN_KEYS if k in keys):
        fill = pad_token_id if key == "input_ids" else 0
        merged[key] = torch.cat([_left_pad(b.inputs[key], width, fill) for b in batches], 0)
    for key in (k for k in VISUAL_KEYS if k in keys):
        merged[key] = torch.cat([torch.as_tensor(b.inputs[key]) for b in batches if key in b.inputs], 0)
    return PromptBatch(inputs=BatchFeature(data=merged), texts=[t for b in batches for t in b.texts],
                       videos_per_prompt=[n for b in batches for n in b.videos_per_prompt],
                       images_per_prompt=[n for b in batches for n in b.images_per_prompt])


def split_prompt_batch(prompts: PromptBatch) -> list[PromptBatch]:
    """Each prompt of ``prompts`` as a batch of its own, its left padding stripped."""
    out = []
    for row in range(len(prompts)):
        inputs = select_prompts(prompts, [row])
        pad = int((inputs["attention_mask"][0] == 0).sum())
        for key in TOKEN_KEYS:
            if key in inputs:
                inputs[key] = inputs[key][:, pad:].clone()
        out.append(PromptBatch(inputs=BatchFeature(data=inputs), texts=[prompts.texts[row]],
                               videos_per_prompt=[prompts.videos_per_prompt[row]],
                               images_per_prompt=[prompts.images_per_prompt[row]]))
    return out


def _unmergeable(keys) -> set[str]:
    """The processor outputs among ``keys`` that :func:`merge_prompt_batches` cannot rebuild."""
    return set(keys) - set(TOKEN_KEYS) - set(VISUAL_KEYS)


def _left_pad(t: torch.Tensor, width: int, fill: int) -> torch.Tensor:
    if t.shape[1] == width:
        return t
    return torch.cat([torch.full((t.shape[0], width - t.shape[1]), fill, dtype=t.dtype), t], 1)


def _nbytes(prompts: PromptBatch) -> int:
    return sum(v.numel() * v.element_size() for v in prompts.inputs.values() if torch.is_tensor(v))


class PromptCache:
    """``build_prompt_batch`` with each prompt processed once per key (while it stays within ``max_bytes``)."""

    def __init__(self, processor, frame_cache: FrameCache, sampling: VideoSampling | None = None,
                 max_bytes: int = 1 << 30):
        self.processor, self.frame_cache, self.sampling = processor, frame_cache, sampling
        self.max_bytes = max_bytes
        self.pad_token_id = processor.tokenizer.pad_token_id
        self._rows: OrderedDict[str, PromptBatch] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0
        self.disabled = False  # set when the processor returns a key that merged batches cannot carry

    def batch(self, keys: Sequence[str], samples: Sequence[Sample]) -> PromptBatch:
        """The prompts of ``samples`` (``keys[i]`` names ``samples[i]``'s prompt) as one left-padded batch."""
        if len(keys) != len(samples):
            raise ValueError(f"{len(keys)} keys for {len(samples)} samples")
        if self.disabled:
            return self._build(samples)
        found = {k: self._rows[k] for k in keys if k in self._rows}
        for k in found:  # used now: the rows kept below must not push them out first
            self._rows.move_to_end(k)
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if not missing:
            return merge_prompt_batches([found[k] for k in keys], self.pad_token_id)
        built = self._build([samples[i] for i in missing])
        unknown = _unmergeable(built.inputs.keys())
        if unknown:  # a processor output merge_prompt_batches cannot rebuild: never serve a batch without it
            log.warning("prompt cache off: the processor returns %s, which cached prompts cannot carry",
                        sorted(unknown))
            self.disabled = True
            self._rows.clear()
            self._bytes = 0
            return built if len(missing) == len(keys) else self._build(samples)
        rows = split_prompt_batch(built) if (found or self.max_bytes > 0) else []
        for i, row in zip(missing, rows):
            found.setdefault(keys[i], row)
            self._keep(keys[i], row)
        if len(missing) == len(keys):
            return built
        return merge_prompt_batches([found[k] for k in keys], self.pad_token_id)

    def _build(self, samples: Sequence[Sample]) -> PromptBatch:
        return build_prompt_batch(self.processor, samples, self.frame_cache, self.sampling)

    def _keep(self, key: str, row: PromptBatch) -> None:
        """Keep ``row`` under ``key`` unless it alone is over the budget; the least recently used rows go first."""
        size = _nbytes(row)
        if key in self._rows or size > self.max_bytes:
            return
        self._rows[key] = row
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, old = self._rows.popitem(last=False)
            self._bytes -= _nbytes(old)

    def __len__(self) -> int:
        return len(self._rows)
