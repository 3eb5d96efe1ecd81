"""SFT's held-out check generates through veripo.generation: the same greedy completions as the HF rollout engine."""
from __future__ import annotations

from veripo.data.schema import load_samples
from veripo.models import load_policy
from veripo.rewards import accuracy_reward
from veripo.rollout.hf_engine import HFEngine
from veripo.sft import greedy_scores
from veripo.video.cache import FrameCache
from veripo.video.sampling import VideoSampling

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO_DICT, synth_task, task_kit  # noqa: F401


def test_greedy_scores_match_the_hf_engine_greedy_completions(task_kit, synth_task):
    model, processor = load_policy(task_kit)
    rows = load_samples(synth_task / "val.jsonl")[:3]
    sampling = VideoSampling(**VIDEO_DICT)
    scored = greedy_scores(model, processor, rows, sampling, FrameCache(), max_new_tokens=12, batch_size=2)
    outs = HFEngine(model, processor, sampling, FrameCache(), batch_size=2).generate(rows, n=1, max_new_tokens=12)
    assert scored == [(f"color/{r.answer}", accuracy_reward(g[0].text, r)) for r, g in zip(rows, outs)]
