"""FrameCache: decode once per (file, mtime/size, sampling); LRU bounds; errors not cached."""
import os
import shutil

import pytest

from veripo.errors import VideoError
from veripo.video.cache import FrameCache
from veripo.video.decode import decode_video
from veripo.video.sampling import VideoSampling

S = VideoSampling(fps=4.0, min_pixels=None, max_pixels=None)


class CountingDecoder:
    """The real decoder, counting its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, path, sampling, backend="auto", threads=1):
        self.calls.append(str(path))
        return decode_video(path, sampling, backend=backend, threads=threads)


def test_second_request_is_a_hit(video_files):
    dec = CountingDecoder()
    cache = FrameCache(decoder=dec)
    a = cache.get(video_files["sq16"], S)
    b = cache.get(str(video_files["sq16"]), S)
    assert b is a and len(dec.calls) == 1
    assert cache.stats()["hits"] == 1 and cache.stats()["misses"] == 1 and cache.nbytes == a.nbytes


def test_other_sampling_or_changed_file_is_a_miss(video_files, tmp_path):
    dec = CountingDecoder()
    cache = FrameCache(decoder=dec)
    path = tmp_path / "v.mp4"
    shutil.copy(video_files["sq16"], path)
    first = cache.get(path, S)
    assert cache.get(path, VideoSampling(num_frames=4, min_pixels=None, max_pixels=None)).num_frames == 4
    assert len(dec.calls) == 2
    shutil.copy(video_files["wide"], path)        # replaced file: new size and mtime
    os.utime(path, ns=(1, 1))
    again = cache.get(path, S)
    assert len(dec.calls) == 3 and again.frames.shape != first.frames.shape


def test_default_sampling_of_the_cache_is_used(video_files):
    cache = FrameCache(sampling=VideoSampling(num_frames=4, min_pixels=None, max_pixels=None))
    assert cache.get(video_files["sq16"]).indices == [0, 5, 10, 15]


def test_lru_bounds_by_count_and_bytes(video_files):
    dec = CountingDecoder()
    cache = FrameCache(max_items=1, decoder=dec)
    cache.get(video_files["sq16"], S)
    cache.get(video_files["wide"], S)
    assert len(cache) == 1 and cache.stats()["evictions"] == 1
    cache.get(video_files["sq16"], S)
    assert len(dec.calls) == 3
    tiny = FrameCache(max_bytes=1000, decoder=dec)        # a clip bigger than the budget is served, not kept
    assert tiny.get(video_files["sq16"], S).num_frames == 8 and len(tiny) == 0 and tiny.nbytes == 0


def test_bad_files_raise_every_time(video_files, tmp_path):
    cache = FrameCache()
    for _ in range(2):
        with pytest.raises(VideoError):
            cache.get(video_files["corrupt"], S)
    with pytest.raises(VideoError, match="not found"):
        cache.get(tmp_path / "missing.mp4", S)
    assert len(cache) == 0


from kit_fixtures import video_files  # noqa: E402,F401


def test_default_cache_keeps_a_data_set_of_more_than_256_small_clips(video_files, tmp_path):
    """A data set is decoded once per run while its clips fit the byte budget: the demo's 512 train clips (4 frames
    of 56x56, 19 MB in all) were evicted by a 256-entry bound and decoded again in every epoch."""
    paths = []
    for i in range(300):
        paths.append(tmp_path / f"v{i}.mp4")
        shutil.copy(video_files["sq16"], paths[-1])
    dec = CountingDecoder()
    cache = FrameCache(decoder=dec)
    for _ in range(2):
        for p in paths:
            cache.get(p, S)
    assert len(dec.calls) == 300 and cache.stats()["evictions"] == 0


def test_get_many_returns_each_clip_in_order_decoding_each_video_once(video_files):
    dec = CountingDecoder()
    cache = FrameCache(decoder=dec)
    hit = cache.get(video_files["wide"], S)
    four = VideoSampling(num_frames=4, min_pixels=None, max_pixels=None)
    clips = cache.get_many([(video_files["sq16"], S), (video_files["wide"], S), (video_files["sq16"], S),
                            (video_files["sq16"], four)], cores=2)
    assert [c.num_frames for c in clips] == [8, hit.num_frames, 8, 4]
    assert clips[1] is hit and clips[0] is clips[2]
    assert (cache.hits, cache.misses) == (2, 3)  # as four gets in a row would count: wide and the repeat hit
    assert sorted(dec.calls) == sorted([str(video_files["wide"])] + [str(video_files["sq16"])] * 2)
    assert clips[0].frames.tobytes() == decode_video(video_files["sq16"], S).frames.tobytes()


def test_get_many_decodes_the_misses_side_by_side(video_files, tmp_path):
    """Two first reads run at once: each decode waits at a two-party barrier, which a one-at-a-time loop never
    passes (BrokenBarrierError after the timeout)."""
    import threading

    barrier = threading.Barrier(2, timeout=10)

    def decoder(path, sampling, backend="auto", threads=1):
        barrier.wait()
        return decode_video(path, sampling, backend=backend, threads=threads)

    other = tmp_path / "copy.mp4"
    shutil.copy(video_files["sq16"], other)
    clips = FrameCache(decoder=decoder).get_many([(video_files["sq16"], S), (other, S)], cores=2)
    assert [c.path for c in clips] == [str(video_files["sq16"].absolute()), str(other.absolute())]


def test_get_many_raises_the_first_bad_video_and_keeps_the_good_ones(video_files, tmp_path):
    cache = FrameCache()
    missing = tmp_path / "gone.mp4"
    with pytest.raises(VideoError, match="corrupt.mp4"):  # in request order: the missing file comes later
        cache.get_many([(video_files["sq16"], S), (video_files["corrupt"], S), (missing, S),
                        (video_files["empty"], S)], cores=2)
    assert len(cache) == 1 and cache.get(video_files["sq16"], S).num_frames == 8 and cache.hits == 1
    with pytest.raises(VideoError, match="gone.mp4"):
        cache.get_many([(missing, S), (video_files["corrupt"], S)], cores=2)
