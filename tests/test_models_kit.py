"""The offline tiny-model kit: save/reload with the Auto classes, determinism, the CLI."""
import json

import pytest
import torch

from veripo.models.tiny import TinyModelSpec, build_tiny_kit, mrope_section
from veripo.video.decode import decode_video
from veripo.video.inputs import build_model_inputs, render_prompt
from veripo.video.sampling import sampling_for_processor

MSG = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which way does it move?"}]}]


def test_kit_reloads_with_auto_classes_and_gives_identical_logits(tiny_kit_dir, video_files):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from veripo.models.tiny import build_model
    from veripo.models.tokenizer import train_tokenizer

    for name in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "veripo_tiny_spec.json"):
        assert (tiny_kit_dir / name).exists(), name
    proc = AutoProcessor.from_pretrained(tiny_kit_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_kit_dir).eval()
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    clip = decode_video(video_files["sq16"], sampling_for_processor(proc, fps=4.0))
    batch = build_model_inputs(proc, [render_prompt(proc, MSG)], [clip])
    # the in-memory model the kit was saved from (same spec, same seed) must give the same logits
    fresh = build_model(train_tokenizer(None, vocab_size=TinyModelSpec().vocab_size), TinyModelSpec())
    with torch.no_grad():
        reloaded, original = model(**batch).logits, fresh(**batch).logits
    assert torch.equal(reloaded, original)
    assert reloaded.std() > 0  # random init, not a constant


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    spec = TinyModelSpec(num_layers=1, vision_depth=1, seed=7)
    a = build_tiny_kit(tmp_path / "a", spec)
    b = build_tiny_kit(tmp_path / "b", spec)
    c = build_tiny_kit(tmp_path / "c", TinyModelSpec(num_layers=1, vision_depth=1, seed=8))
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    assert json.loads((c / "veripo_tiny_spec.json").read_text())["seed"] == 8


def test_build_replaces_an_existing_directory_atomically(tmp_path):
    out = tmp_path / "kit"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    build_tiny_kit(out, TinyModelSpec(num_layers=1, vision_depth=1))
    assert not (out / "stale.txt").exists() and (out / "config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["kit"]  # no temp dirs left behind


def test_generation_ends_and_vision_tokens_can_be_suppressed(tiny_policy, video_files):
    model, proc = tiny_policy
    clip = decode_video(video_files["sq16"], sampling_for_processor(proc, num_frames=4))
    batch = build_model_inputs(proc, [render_prompt(proc, MSG)] * 2, [clip, clip])
    bad = proc.tokenizer.convert_tokens_to_ids(["<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>"])
    out = model.generate(**batch, max_new_tokens=6, do_sample=True, suppress_tokens=bad)
    new = out[:, batch["input_ids"].shape[1]:]
    assert new.shape[0] == 2 and not any(int(t) in bad for t in new.flatten())


def test_spec_validation_and_mrope():
    assert mrope_section(32) == [4, 6, 6] and mrope_section(128) == [16, 24, 24]
    with pytest.raises(ValueError):
        TinyModelSpec(hidden_size=100, num_heads=3).validate()


def test_cli_build_and_info(tmp_path, capsys):
    from veripo.cli import main

    out = tmp_path / "cli-kit"
    assert main(["model", "build-tiny", "--out", str(out), "--hidden-size", "64", "--num-layers", "1", "--seed", "3"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["text_config"]["hidden_size"] == 64 and cfg["text_config"]["num_hidden_layers"] == 1
    capsys.readouterr()
    assert main(["model", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params_total"] == info["params_vision"] + info["params_language"] > 0
    assert "<think>" not in info["added_non_special_tokens"] and "<tool_call>" in info["added_non_special_tokens"]
    assert "<|video_pad|>" in info["special_tokens"]
    assert main(["model", "info", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err


from kit_fixtures import tiny_kit_dir, tiny_policy, video_files  # noqa: E402,F401
