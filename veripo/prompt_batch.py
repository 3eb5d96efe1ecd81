"""Samples -> one left-padded model batch of prompts (chat template, decoded frames, processor).

``PromptBatch`` remembers how many videos / images each prompt carries, so that later stages can repeat
or select prompts (G rollouts per prompt, chosen and rejected per pair) without re-running the processor:
see :func:`veripo.sequences.select_prompts`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from veripo.data.schema import Sample
from veripo.prompts import chat_messages
from veripo.video.cache import FrameCache
from veripo.video.inputs import build_model_inputs, render_prompt
from veripo.video.sampling import VideoSampling, sampling_from_message


@dataclasses.dataclass
class PromptBatch:
    inputs: Any                      # BatchFeature: input_ids, attention_mask, mm_token_type_ids, visual tensors
    texts: list[str]                 # rendered prompts (chat template applied)
    videos_per_prompt: list[int]
    images_per_prompt: list[int]

    def __len__(self) -> int:
        return len(self.texts)


def row_sampling(sample: Sample, sampling: VideoSampling | None, frame_cache: FrameCache) -> VideoSampling | None:
    """The frame sampling of ``sample``'s video: its own qwen-vl-utils video item options (``nframes``, ``fps``,
    pixel bounds) over the run's ``sampling`` when the row has them. Every path that reads a row's video (the
    update forward's prompt batch, the vLLM request) goes through this, so both see the same frames."""
    if not sample.video_options:
        return sampling
    return sampling_from_message(sample.video_options, sampling or frame_cache.sampling)


def build_prompt_batch(processor, samples: Sequence[Sample], frame_cache: FrameCache,
                       sampling: VideoSampling | None = None, reasoning: bool = True,
                       frame_transform=None) -> PromptBatch:
    """Render, decode (through the cache) and process ``samples``.

    ``frame_transform(clip, sample) -> clip`` may alter the decoded clip (robustness evaluation).
    Raises :class:`veripo.errors.VideoError` naming the file when a video cannot be read.
    """
    from PIL import Image

    texts = [render_prompt(processor, chat_messages(sample, reasoning=reasoning)) for sample in samples]
    requests = [(s.path, row_sampling(s, sampling, frame_cache)) for s in samples if s.data_type == "video"]
    decoded = iter(frame_cache.get_many(requests))  # a batch's first reads decoded side by side
    clips, images, n_videos, n_images = [], [], [], []
    for sample in samples:
        clip = image = None
        if sample.data_type == "video":
            clip = next(decoded)
            if frame_transform is not None:
                clip = frame_transform(clip, sample)
        elif sample.data_type == "image":
            image = Image.open(sample.path).convert("RGB")
        clips.append(clip)
        images.append(image)
        n_videos.append(int(clip is not None))
        n_images.append(int(image is not None))
    inputs = build_model_inputs(processor, texts, clips, images if any(n_images) else None)
    return PromptBatch(inputs=inputs, texts=texts, videos_per_prompt=n_videos, images_per_prompt=n_images)
