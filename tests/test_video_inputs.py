"""build_model_inputs: frames + metadata -> processor batch with correct second_per_grid_ts, mixed batches."""
import numpy as np
import pytest
import torch

from veripo.video.decode import decode_video
from veripo.video.inputs import build_model_inputs, render_prompt
from veripo.video.sampling import VideoSampling, sampling_for_processor

VIDEO_MSG = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which way does it move?"}]}]
TEXT_MSG = [{"role": "user", "content": [{"type": "text", "text": "What is two plus two, in words?"}]}]
IMAGE_MSG = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}]


@pytest.mark.parametrize("fps, frames, expected", [(4.0, 8, 0.5), (2.0, 4, 1.0)])
def test_second_per_grid_ts_matches_sampled_rate(tiny_policy, video_files, fps, frames, expected):
    _, proc = tiny_policy
    clip = decode_video(video_files["sq16"], sampling_for_processor(proc, fps=fps))
    assert clip.num_frames == frames
    batch = build_model_inputs(proc, [render_prompt(proc, VIDEO_MSG)], [clip])
    # temporal_patch_size (2) / sampled fps
    assert batch["second_per_grid_ts"].tolist() == pytest.approx([expected])
    t, h, w = batch["video_grid_thw"][0].tolist()
    assert t == frames // 2 and (h, w) == (4, 4)                       # 56x56 frames, patch 14
    n_video_tokens = int((batch["input_ids"] == proc.video_token_id).sum())
    assert n_video_tokens == t * h * w // 4                              # merge 2x2


def test_mixed_batch_is_left_padded_and_runs_through_the_model(tiny_policy, video_files):
    model, proc = tiny_policy
    proc.tokenizer.padding_side = "right"  # build_model_inputs pads left regardless
    s = sampling_for_processor(proc, fps=4.0)
    clip_a = decode_video(video_files["sq16"], s)
    clip_b = decode_video(video_files["wide"], s)
    image = np.full((56, 56, 3), 200, dtype=np.uint8)
    texts = [render_prompt(proc, m) for m in (VIDEO_MSG, TEXT_MSG, IMAGE_MSG, VIDEO_MSG)]
    batch = build_model_inputs(proc, texts, [clip_a, None, None, clip_b], [None, None, image, None])
    mask = batch["attention_mask"]
    assert mask.shape[0] == 4 and bool(mask[:, -1].all())               # left padding: every row ends with tokens
    assert mask[1].sum() < mask[0].sum() and mask[1, 0] == 0
    assert batch["video_grid_thw"].shape[0] == 2 and batch["image_grid_thw"].shape[0] == 1
    assert batch["second_per_grid_ts"].tolist() == pytest.approx([0.5, 0.5])
    assert batch["mm_token_type_ids"].shape == batch["input_ids"].shape
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()


def test_video_placeholder_and_clip_count_must_agree(tiny_policy, video_files):
    _, proc = tiny_policy
    clip = decode_video(video_files["sq16"], sampling_for_processor(proc, num_frames=4))
    with pytest.raises(ValueError, match="prompt 0 has 1"):
        build_model_inputs(proc, [render_prompt(proc, VIDEO_MSG)], [None])
    with pytest.raises(ValueError, match="prompt 0 has 0"):
        build_model_inputs(proc, [render_prompt(proc, TEXT_MSG)], [clip])
    with pytest.raises(ValueError, match="1 texts but 2"):
        build_model_inputs(proc, [render_prompt(proc, TEXT_MSG)], [None, None])


def test_native_size_frames_are_resized_by_the_processor(tiny_policy, video_files):
    _, proc = tiny_policy
    clip = decode_video(video_files["wide"], VideoSampling(num_frames=4, min_pixels=None, max_pixels=None))
    assert clip.frames.shape[1:3] == (96, 128)
    batch = build_model_inputs(proc, [render_prompt(proc, VIDEO_MSG)], [clip])
    _, h, w = batch["video_grid_thw"][0].tolist()
    assert h * 14 * w * 14 <= 64 * 64                                    # the processor's own budget applied


from kit_fixtures import tiny_kit_dir, tiny_policy, video_files  # noqa: E402,F401
