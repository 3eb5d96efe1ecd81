"""Shape twins of Qwen2.5-VL-3B / -7B: true widths, few layers (veripo/models/shape_twin.py); the slow test runs
one GRPO and one DPO step with LoRA at 448x448 x 16 frames (scripts/bench_shape_twins.py; BENCHMARKS.md)."""
from __future__ import annotations

import pytest

from veripo.models.shape_twin import shape_twin_config

# config.json of Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct (values as published; see tests/test_models_twin.py)
REAL = {"3B": dict(hidden=2048, inter=11008, heads=16, kv=2, vocab=151936, tied=True, out=2048),
        "7B": dict(hidden=3584, inter=18944, heads=28, kv=4, vocab=152064, tied=False, out=3584)}


@pytest.mark.parametrize("size", ["3B", "7B"])
def test_shape_twin_config_has_the_checkpoints_widths(size):
    r = REAL[size]
    cfg = shape_twin_config(size, num_layers=2, vision_depth=2)
    t, v = cfg.text_config, cfg.vision_config
    assert (t.hidden_size, t.intermediate_size, t.num_attention_heads, t.num_key_value_heads, t.vocab_size) == \
        (r["hidden"], r["inter"], r["heads"], r["kv"], r["vocab"])
    assert t.num_hidden_layers == 2 and t.rope_parameters["mrope_section"] == [16, 24, 24]
    assert t.rope_parameters["rope_theta"] == 1e6 and bool(cfg.tie_word_embeddings) is r["tied"]
    assert (v.hidden_size, v.intermediate_size, v.num_heads, v.out_hidden_size, v.patch_size, v.spatial_merge_size,
            v.temporal_patch_size, v.window_size, v.tokens_per_second) == (1280, 3420, 16, r["out"], 14, 2, 2, 112, 2)
    assert v.depth == 2 and v.fullatt_block_indexes == [1]
    assert shape_twin_config(size, vision_depth=32).vision_config.fullatt_block_indexes == [7, 15, 23, 31]
    assert shape_twin_config(size, vision_depth=10).vision_config.fullatt_block_indexes == [7, 9]
    assert (cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id) == (151655, 151656, 151652)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["3B", "7B"])
def test_shape_twin_grpo_and_dpo_steps_run_at_448_by_16_frames(size):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_shape_twins.py"
    spec = importlib.util.spec_from_file_location("bench_shape_twins", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.run_one(size, layers=1, vision_depth=1, tokens=4, group=2, dtype="bfloat16")
    assert out["grpo_loss_finite"] and out["dpo_loss"] == pytest.approx(0.6931, abs=1e-2)
    assert out["prompt_tokens"] > 2048  # 16 frames of 448x448 -> 8 x 32 x 32 patches / 4 = 2048 video tokens
