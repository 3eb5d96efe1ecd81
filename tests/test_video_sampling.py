"""Frame-count and frame-size rules of veripo.video.sampling."""
import pytest

from veripo.video.sampling import VideoSampling, sample_indices, sampling_for_processor, target_size


def test_fps_sampling_count_and_even_spacing():
    s = VideoSampling(fps=4.0, min_pixels=None, max_pixels=None)
    n = s.num_frames_for(total_frames=16, native_fps=8.0)  # 2 s at 4 fps
    assert n == 8
    assert sample_indices(16, n) == [0, 2, 4, 6, 9, 11, 13, 15]  # round(linspace(0, 15, 8)), qwen-vl-utils' rule


def test_fps_sampling_is_clamped_and_rounded_to_the_temporal_patch():
    s = VideoSampling(fps=2.0, min_frames=4, max_frames=10, frame_factor=2)
    assert s.num_frames_for(8, 8.0) == 4          # 1 s -> 2 frames -> min 4
    assert s.num_frames_for(800, 8.0) == 10       # 100 s -> 200 frames -> max 10
    assert s.num_frames_for(20, 8.0) == 4         # 2.5 s -> 5 frames -> floor to 4 (multiple of 2, qwen-vl-utils)
    assert s.num_frames_for(3, 8.0) == 2          # never more than the clip has (min 4 capped at 3 -> 2)
    assert s.num_frames_for(1, 8.0) == 2          # one frame: repeated (qwen-vl-utils raises)


def test_fixed_count_overrides_fps_and_spreads_over_the_clip():
    s = VideoSampling(fps=30.0, num_frames=4)
    assert s.num_frames_for(16, 8.0) == 4
    assert sample_indices(16, 4) == [0, 5, 10, 15]
    assert VideoSampling(num_frames=5, fps=None).num_frames_for(16, 8.0) == 4  # round(2.5) = 2: half to even
    assert VideoSampling(num_frames=7, fps=None).num_frames_for(16, 8.0) == 8
    assert sample_indices(40, 4, 10, 32) == [10, 17, 25, 32]  # a video_start..video_end range


def test_range_and_clip_pixel_budget():
    s = VideoSampling(fps=2.0, video_start=0.5, video_end=1.6)
    assert s.frame_range(40, 20.0) == (10, 32)
    with pytest.raises(ValueError, match="leave no frames"):
        VideoSampling(video_start=3.0, video_end=1.0).frame_range(40, 20.0)
    s = VideoSampling(min_pixels=3136, max_pixels=50000, total_pixels=20000)
    assert s.pixel_budget(4) == (3136, 10000.0) and s.pixel_budget(100) == (3136, 3292)


def test_short_clip_repeats_frames_instead_of_failing():
    idx = sample_indices(3, 4)
    assert len(idx) == 4 and idx == sorted(idx) and max(idx) == 2


def test_target_size_keeps_budget_and_multiples_of_28():
    assert target_size(64, 64, 4 * 28 * 28, 64 * 64) == (56, 56)
    h, w = target_size(96, 128, 4 * 28 * 28, 64 * 64)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 64 * 64 and w >= h
    h, w = target_size(1080, 1920, 128 * 28 * 28, 768 * 28 * 28)
    assert h * w <= 768 * 28 * 28 and h % 28 == 0 and w % 28 == 0 and abs(w / h - 16 / 9) < 0.15
    h, w = target_size(32, 32, 128 * 28 * 28, 768 * 28 * 28)   # upscaled to the minimum
    assert h * w >= 128 * 28 * 28


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError):
        VideoSampling(fps=None, num_frames=None)
    with pytest.raises(ValueError):
        VideoSampling(min_frames=8, max_frames=4)
    with pytest.raises(ValueError):
        VideoSampling(min_pixels=100, max_pixels=10)


def test_sampling_for_processor_copies_the_budget(tiny_kit_dir):
    from veripo.models.load import load_processor

    proc = load_processor(tiny_kit_dir)
    s = sampling_for_processor(proc, fps=4.0)
    assert (s.min_pixels, s.max_pixels, s.frame_factor, s.size_factor, s.fps) == (4 * 28 * 28, 64 * 64, 2, 28, 4.0)


def test_sampling_loads_from_config_overrides():
    from veripo.config import from_dict

    s = from_dict(VideoSampling, {"fps": "1.5", "max_frames": 16, "max_pixels": None})
    assert s.fps == 1.5 and s.max_frames == 16 and s.max_pixels is None


from kit_fixtures import tiny_kit_dir  # noqa: E402,F401
