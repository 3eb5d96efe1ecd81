"""veripo's frames against qwen-vl-utils' (0.0.14, ``fetch_video`` on decord) on the same files and settings:
frame indices, resized sizes, pixel values, sampled fps, and the processor's ``pixel_values_videos`` and
``second_per_grid_ts``; plus the documented deliberate differences (veripo/video/sampling.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import veripo  # noqa: F401  (the torchvision shim, before qwen_vl_utils imports torchvision)
from veripo.video.decode import decode_video
from veripo.video.sampling import VideoSampling, sampling_from_message

qvu = pytest.importorskip("qwen_vl_utils")
SMALL = {"min_pixels": 3136, "max_pixels": 12544}  # 56x56 .. 112x112: fast, and both sides of the rounding rules

# (name, frames, fps, height, width, message options)
CASES = [
    ("short-8fps", 16, 8, 64, 64, {"fps": 2.0, **SMALL}),
    ("wide-25fps", 50, 25, 96, 128, {"fps": 4.0, "min_pixels": 3136, "max_pixels": 6272}),
    ("tall-10fps-nframes", 30, 10, 120, 90, {"nframes": 8, **SMALL}),
    ("nframes-half-to-even", 30, 10, 64, 80, {"nframes": 5, **SMALL}),   # round(2.5) = 2 -> 4 frames
    ("range", 40, 20, 64, 64, {"fps": 5.0, "video_start": 0.5, "video_end": 1.6, **SMALL}),
    ("clip-budget", 24, 12, 100, 100, {"fps": 2.0, "min_pixels": 3136, "max_pixels": 50000, "total_pixels": 20000}),
    ("long-30fps", 90, 30, 72, 128, {"fps": 2.0, "min_frames": 4, "max_frames": 6, **SMALL}),
    ("odd-rate", 37, 7, 50, 70, {"fps": 3.0, **SMALL}),
]


def _frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    frames = np.repeat(base, n, axis=0)
    for t in range(n):  # a moving bar and a per-frame marker: every frame differs
        frames[t, :, (3 * t) % w: (3 * t) % w + 6] = (250, 20, 20)
        frames[t, :6, :6] = (10 * t) % 256
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    from veripo.video.write import write_mp4

    root = tmp_path_factory.mktemp("qvu")
    out = {}
    for i, (name, n, fps, h, w, _) in enumerate(CASES):
        out[name] = write_mp4(root / f"{name}.mp4", _frames(n, h, w, i), fps=fps)
    out["tiny"] = write_mp4(root / "tiny.mp4", _frames(6, 64, 64, 99), fps=6)
    out["big"] = write_mp4(root / "big.mp4", _frames(4, 800, 800, 98), fps=4)
    return out


def _qwen(path: Path, options: dict):
    (video, meta), sample_fps = qvu.fetch_video({"type": "video", "video": str(path), **options},
                                                return_video_sample_fps=True, return_video_metadata=True)
    assert meta["video_backend"] == "decord"
    return video, meta, sample_fps


def _ours(path: Path, options: dict):
    sampling = sampling_from_message({"type": "video", "video": str(path), **options})
    return decode_video(path, sampling, backend="decord")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_frames_equal_qwen_vl_utils(case, videos):
    name, _, _, _, _, options = case
    video, meta, sample_fps = _qwen(videos[name], options)
    clip = _ours(videos[name], options)
    assert clip.indices == meta["frames_indices"]
    assert clip.frames.shape == tuple(video.permute(0, 2, 3, 1).shape)  # same count and resized size
    assert np.array_equal(clip.frames, video.permute(0, 2, 3, 1).numpy().astype(np.uint8))
    assert torch.equal(video, video.round())  # qwen's frames are uint8 values as floats (torchvision rounds)
    assert clip.sampled_fps == pytest.approx(sample_fps, rel=1e-12)
    assert clip.metadata().sampled_fps == pytest.approx(sample_fps, rel=1e-12)


def test_processor_inputs_equal_qwen_vl_utils(videos):
    """process_vision_info(messages, return_video_metadata=True) -> processor, against build_model_inputs."""
    from transformers.video_utils import VideoMetadata

    from veripo.models.tiny import TinyModelSpec, build_processor
    from veripo.models.tokenizer import train_tokenizer
    from veripo.video.inputs import build_model_inputs

    proc = build_processor(train_tokenizer(None), TinyModelSpec.checkpoint_twin())
    for name in ("wide-25fps", "range", "tall-10fps-nframes"):
        options = next(c[5] for c in CASES if c[0] == name)
        item = {"type": "video", "video": str(videos[name]), **options}
        messages = [{"role": "user", "content": [item, {"type": "text", "text": "What moves?"}]}]
        text = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        _, qvideos, kwargs = qvu.process_vision_info(messages, return_video_kwargs=True, return_video_metadata=True)
        (qvideo, qmeta), = qvideos
        theirs = proc(text=[text], videos=[qvideo], video_metadata=[VideoMetadata(**qmeta)], return_tensors="pt",
                      **kwargs)
        ours = build_model_inputs(proc, [text], [_ours(videos[name], options)])
        assert torch.equal(ours["video_grid_thw"], theirs["video_grid_thw"]), name
        assert torch.equal(ours["pixel_values_videos"], theirs["pixel_values_videos"]), name
        assert torch.allclose(torch.as_tensor(ours["second_per_grid_ts"]),
                              torch.as_tensor(theirs["second_per_grid_ts"])), name
        assert torch.equal(ours["input_ids"], theirs["input_ids"]), name


# ------------------------------------------------------------------ deliberate differences
def test_more_frames_than_the_clip_repeat_where_qwen_vl_utils_raises(videos):
    with pytest.raises(ValueError, match="nframes should in interval"):  # its decord reader (fetch_video then
        qvu.vision_process._read_video_decord({"video": str(videos["tiny"]), "nframes": 8})  # falls back to torchvision IO)
    clip = _ours(videos["tiny"], {"nframes": 8, **SMALL})
    assert clip.num_frames == 8 and clip.indices == sorted(clip.indices) and len(set(clip.indices)) == 6
    assert clip.indices[0] == 0 and clip.indices[-1] == 5


def test_max_pixels_above_qwen_vl_utils_cap_is_honoured(videos):
    big = {"fps": 2.0, "max_pixels": 700_000}  # qwen-vl-utils caps a video frame at 768*28*28 = 602112 pixels
    video, _, _ = _qwen(videos["big"], big)
    clip = _ours(videos["big"], big)
    h, w = clip.frames.shape[1:3]
    assert tuple(video.shape[2:]) == (756, 756) and (h, w) == (812, 812)  # 800x800 native: 812^2 <= 700000


def test_message_options_are_checked():
    assert sampling_from_message({"nframes": 8}, VideoSampling(fps=4.0)).num_frames == 8
    assert sampling_from_message({"fps": 1.0}, VideoSampling(num_frames=16)).num_frames is None
    for bad, why in (({"fps": 2.0, "nframes": 4}, "not both"), ({"fsp": 2}, "unknown video option 'fsp'"),
                     ({"resized_height": 56, "resized_width": 56}, "not supported"), ({"nframes": 0}, "num_frames")):
        with pytest.raises(ValueError, match=why):
            sampling_from_message(bad)


def test_a_data_row_in_message_form_samples_with_its_options(videos, tmp_path):
    import json

    from veripo.data.schema import Sample, load_samples
    from veripo.models.tiny import TinyModelSpec, build_processor
    from veripo.models.tokenizer import train_tokenizer
    from veripo.prompt_batch import build_prompt_batch
    from veripo.video.cache import FrameCache

    item = {"type": "video", "video": videos["wide-25fps"].name, "nframes": 4, "min_pixels": 3136, "max_pixels": 3136}
    row = {"problem_id": "1", "problem": "What moves?", "problem_type": "free-form", "solution": "a bar", "video": item}
    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / item["video"]).write_bytes(videos["wide-25fps"].read_bytes())
    (sample,) = load_samples(tmp_path / "rows.jsonl", strict=True)
    assert sample.data_type == "video" and sample.path == str(tmp_path / item["video"])
    assert sample.video_options == {"nframes": 4, "min_pixels": 3136, "max_pixels": 3136} and "video" not in sample.extra
    assert Sample.from_dict(sample.to_dict()) == sample
    proc = build_processor(train_tokenizer(None), TinyModelSpec())
    batch = build_prompt_batch(proc, [sample], FrameCache(), VideoSampling(fps=8.0, min_pixels=3136, max_pixels=3136))
    assert batch.inputs["video_grid_thw"][0, 0] == 2  # the row's 4 frames (2 temporal patches), not 8 fps (16)
    for bad, why in (({**item, "fsp": 1}, "unknown video option"), ({**item, "video": "other.mp4"}, None)):
        with pytest.raises(ValueError, match=why or "name different files"):
            Sample.from_dict({**row, "video": bad, "path": item["video"]})
