"""decode_video on real mp4 files: frame counts, true timestamps, resizing, bad files, the PyAV fallback."""
import numpy as np
import pytest

from veripo.errors import VideoError
from veripo.video.decode import decode_video
from veripo.video.sampling import VideoSampling

NATIVE = VideoSampling(fps=4.0, min_pixels=None, max_pixels=None)


def test_fps_sampling_gives_right_frames_and_timestamps(video_files):
    clip = decode_video(video_files["sq16"], NATIVE)
    assert clip.frames.shape == (8, 64, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.indices == [0, 2, 4, 6, 9, 11, 13, 15]
    assert clip.timestamps == pytest.approx([i / 8 for i in clip.indices])
    assert clip.native_fps == pytest.approx(8.0) and clip.total_frames == 16
    assert clip.sampled_fps == pytest.approx(4.0)
    # the frame-id marker (green = 10 * source index) proves these are the frames at those indices
    markers = clip.frames[:, 1, 1, 1].astype(int)
    assert np.all(np.abs(markers - 10 * np.array(clip.indices)) <= 6)


def test_count_sampling_spreads_over_the_clip(video_files):
    clip = decode_video(video_files["sq16"], VideoSampling(num_frames=4, min_pixels=None, max_pixels=None))
    assert clip.num_frames == 4 and clip.indices == [0, 5, 10, 15]
    assert clip.timestamps == pytest.approx([0.0, 0.625, 1.25, 1.875])


def test_frames_are_resized_to_the_pixel_budget(video_files):
    clip = decode_video(video_files["wide"], VideoSampling(fps=2.0, min_pixels=4 * 28 * 28, max_pixels=64 * 64))
    t, h, w, _ = clip.frames.shape
    assert t == 4 and clip.total_frames == 24  # 2 s at 2 fps -> 4 (= min_frames)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 64 * 64 and w > h


def test_pyav_fallback_gives_the_same_frames(video_files):
    a = decode_video(video_files["sq16"], NATIVE, backend="decord")
    b = decode_video(video_files["sq16"], NATIVE, backend="pyav")
    assert b.backend == "pyav" and a.backend == "decord"
    assert b.frames.shape == a.frames.shape and b.indices == a.indices and b.timestamps == a.timestamps
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 2.0


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_decoder_threads_give_the_same_frames(video_files, backend):
    one = decode_video(video_files["wide"], NATIVE, backend=backend, threads=1)
    two = decode_video(video_files["wide"], NATIVE, backend=backend, threads=2)
    assert one.indices == two.indices and one.frames.shape == two.frames.shape
    assert np.array_equal(one.frames, two.frames)


def test_auto_falls_back_to_pyav_when_decord_is_missing(video_files, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` now raises ImportError
    clip = decode_video(video_files["sq16"], NATIVE)
    assert clip.backend == "pyav" and clip.num_frames == 8


@pytest.mark.parametrize("name, reason", [("empty", "empty"), ("corrupt", "cannot decode")])
def test_bad_videos_raise_video_error_naming_the_file(video_files, name, reason):
    with pytest.raises(VideoError) as err:
        decode_video(video_files[name], NATIVE)
    assert str(video_files[name]) in str(err.value) and reason in str(err.value)


def test_missing_video_raises_video_error(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match="not found") as err:
        decode_video(missing)
    assert str(missing) in str(err.value)


def test_truncated_video_raises_or_decodes_but_never_crashes(video_files, tmp_path):
    data = video_files["sq16"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    try:
        clip = decode_video(cut, NATIVE)
    except VideoError as e:
        assert str(cut) in str(e)
    else:
        assert clip.num_frames >= 2


from kit_fixtures import video_files  # noqa: E402,F401
