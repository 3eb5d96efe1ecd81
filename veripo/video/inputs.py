"""Turn prompts + decoded clips into one left-padded model batch (``build_model_inputs``).

The processor is always given the decoded frames *and* their ``VideoMetadata`` with ``do_sample_frames=False``.
That is what makes ``second_per_grid_ts = temporal_patch_size / sampled_fps`` right (0.5 s for frames sampled
at 4 fps with temporal patch 2); without the metadata transformers silently assumes 24 fps (cpu-stack.md
pitfall 2), and passing paths instead of frames needs torchcodec (pitfall 3).

Mixed batches work: a prompt may have one or more videos, images, or nothing (text only). Item ``i`` of
``clips`` / ``images`` belongs to ``texts[i]`` and the number of ``<|video_pad|>`` / ``<|image_pad|>``
placeholders in ``texts[i]`` must equal the number of clips / images given for it (checked, with a clear
error). Returned keys: ``input_ids``, ``attention_mask``, ``mm_token_type_ids`` and, when present,
``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts``, ``pixel_values``, ``image_grid_thw``.
"""
from __future__ import annotations

from typing import Any, Sequence

from veripo.video.decode import VideoClip


def render_prompt(processor, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
    """The chat-templated prompt text (vision placeholders included), ready for ``build_model_inputs``."""
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def video_processor_kwargs(processor) -> dict[str, Any]:
    """The video processor settings for frames we decoded ourselves (the HF path and the vLLM requests
    both send these): no second frame sampling (``do_sample_frames=False``) and, where transformers has the
    option, no total-video pixel budget on top of the per-frame one (``cap_pixels_per_frame=False``: the
    frames are already within ``VideoSampling``'s budget; cpu-stack.md pitfall 10)."""
    kwargs: dict[str, Any] = {"do_sample_frames": False}
    if hasattr(getattr(processor, "video_processor", None), "cap_pixels_per_frame"):
        kwargs["cap_pixels_per_frame"] = False
    return kwargs


def _as_list(item: Any) -> list[Any]:
    if item is None:
        return []
    if isinstance(item, (list, tuple)):
        return list(item)
    return [item]


def build_model_inputs(processor, texts: Sequence[str], clips: Sequence[VideoClip | Sequence[VideoClip] | None] | None = None,
                       images: Sequence[Any] | None = None, padding_side: str = "left", return_tensors: str = "pt"):
    """One batch (BatchFeature) for ``texts`` with their videos (``clips[i]``) and images (``images[i]``).

    ``texts`` are rendered prompts (see ``render_prompt``). ``clips[i]`` is a VideoClip, a list of them, or
    None; ``images[i]`` likewise (PIL images or uint8 [H, W, 3] arrays). Left padding by default.
    """
    texts = list(texts)
    clips = list(clips) if clips is not None else [None] * len(texts)
    images = list(images) if images is not None else [None] * len(texts)
    if len(clips) != len(texts) or len(images) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(clips)} clip entries and {len(images)} image entries")
    video_token = getattr(processor, "video_token", "<|video_pad|>")
    image_token = getattr(processor, "image_token", "<|image_pad|>")
    videos, metadata, flat_images = [], [], []
    for i, text in enumerate(texts):
        row_clips, row_images = _as_list(clips[i]), _as_list(images[i])
        if text.count(video_token) != len(row_clips):
            raise ValueError(f"prompt {i} has {text.count(video_token)} {video_token} placeholder(s) but "
                             f"{len(row_clips)} video(s) were given")
        if text.count(image_token) != len(row_images):
            raise ValueError(f"prompt {i} has {text.count(image_token)} {image_token} placeholder(s) but "
                             f"{len(row_images)} image(s) were given")
        for clip in row_clips:
            videos.append(clip.frames)
            metadata.append(clip.metadata())
        flat_images.extend(row_images)
    kwargs: dict[str, Any] = dict(text=texts, padding=True, padding_side=padding_side, return_tensors=return_tensors)
    if videos:
        kwargs.update(videos=videos, video_metadata=metadata, **video_processor_kwargs(processor))
    if flat_images:
        kwargs["images"] = flat_images
    return processor(**kwargs)
