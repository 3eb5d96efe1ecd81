"""scripts/bench_video_vs_qwen.py on a tiny input: the two readers give identical frames, the cache serves the second
read, and the GRPO share counts every prompt's video once. Nothing here asserts on timing."""
import importlib.util
import sys
from pathlib import Path

import pytest

import veripo  # noqa: F401  (the torchvision shim, before qwen_vl_utils imports torchvision)

pytest.importorskip("qwen_vl_utils")
pytest.importorskip("decord")

ROOT = Path(__file__).resolve().parents[1]
# loaded from its file, not via sys.path (scripts/deepspeed/ would shadow DeepSpeed; see tests/test_gpu_check.py)
_spec = importlib.util.spec_from_file_location("bench_video_vs_qwen", ROOT / "scripts" / "bench_video_vs_qwen.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_video_vs_qwen"] = bench
_spec.loader.exec_module(bench)

OPTIONS = {"nframes": 4, "min_pixels": 3136, "max_pixels": 3136}


def test_frames_identical_and_cached_read_is_a_hit(tmp_path):
    paths = bench.make_videos(tmp_path / "v", {"size": 64, "frames": 8, "fps": 4.0}, 2)
    assert len(paths) == 2 and all(p.exists() for p in paths)
    out = bench.bench_case(paths, OPTIONS, repeats=2, processor=bench.processor_for())
    assert out["identical"] and out["max_abs_diff"] == 0.0
    assert [c["shape"] for c in out["checks"]] == [[4, 56, 56, 3]] * 2  # 64x64 resized to the 56x56 budget
    assert all(c["same_indices"] for c in out["checks"])
    assert set(out["ms"]) == {"qwen", "ours_first", "ours_cached", "qwen_inputs", "ours_first_inputs",
                              "ours_cached_inputs"}
    assert all(v > 0 for v in out["ms"].values())


def test_batch_first_reads_give_qwen_vl_utils_frames_video_by_video(tmp_path):
    paths = bench.make_videos(tmp_path / "v", {"size": 64, "frames": 8, "fps": 4.0}, 3)
    out = bench.bench_batch(paths, OPTIONS, repeats=1)
    assert out["identical"] and out["videos"] == 3 and out["workers"] >= 1
    assert out["ms"]["qwen_batch"] > 0 and out["ms"]["ours_batch"] > 0


def test_compare_frames_sees_a_one_level_difference(tmp_path):
    from veripo.video.cache import FrameCache

    (path,) = bench.make_videos(tmp_path / "v", {"size": 56, "frames": 8, "fps": 4.0}, 1)
    video, meta = bench.qwen_read(path, OPTIONS)
    clip = bench.veripo_read(FrameCache(), path, OPTIONS)
    assert bench.compare_frames(video, meta, clip)["max_abs_diff"] == 0.0
    video[0, 0, 0, 0] += 1.0
    assert bench.compare_frames(video, meta, clip)["max_abs_diff"] == 1.0


def test_grpo_share_times_every_prompt_batch(tmp_path):
    share = bench.grpo_share(tmp_path, steps=2, prompts=2, group=2, tokens=4)
    assert share["cache"]["misses"] == 4  # 2 steps x 2 new prompts: each video decoded once
    assert len(share["per_step_s"]["step"]) == 2
    assert all(s > 0 for s in share["per_step_s"]["prompt_batch"])
    assert all(f <= p <= s for f, p, s in zip(*(share["per_step_s"][k] for k in ("frames", "prompt_batch", "step"))))
    assert 0 < share["share"] < 1
