"""LoRA on the language model only, a frozen vision tower, and save/reload of adapters or merged weights."""
import torch

from veripo.models.load import load_policy
from veripo.models.lora import (apply_lora, freeze_vision_tower, is_peft_model, is_vision_name, save_policy,
                                trainable_parameters)


def _text_batch(proc):
    return proc.tokenizer(["<think>the red square moves left</think><answer>A</answer>"], return_tensors="pt")


def _perturb_lora(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def test_lora_targets_only_the_language_model(tiny_policy):
    model, proc = tiny_policy
    peft_model = apply_lora(model, r=4, alpha=8)
    lora_modules = [n for n, _ in peft_model.named_modules() if n.endswith("lora_A")]
    assert lora_modules and not any(is_vision_name(n) for n in lora_modules)
    assert {n.split(".")[-2] for n in lora_modules} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_fresh_adapters_match_base_and_disable_adapter_is_the_reference(tiny_policy):
    model, proc = tiny_policy
    x = _text_batch(proc)
    with torch.no_grad():
        base = model(**x).logits.clone()
    peft_model = apply_lora(model)
    with torch.no_grad():
        assert torch.allclose(peft_model(**x).logits, base)          # B = 0 at init
    _perturb_lora(peft_model)
    with torch.no_grad():
        assert not torch.allclose(peft_model(**x).logits, base)
        with peft_model.disable_adapter():
            assert torch.equal(peft_model(**x).logits, base)


def test_save_adapters_and_merged_and_reload(tiny_policy, tmp_path):
    model, proc = tiny_policy
    peft_model = apply_lora(model)
    _perturb_lora(peft_model)
    x = _text_batch(proc)
    with torch.no_grad():
        expected = peft_model(**x).logits
    adapters = save_policy(peft_model, proc, tmp_path / "adapters")
    assert (adapters / "adapter_config.json").exists() and not (adapters / "model.safetensors").exists()
    merged = save_policy(peft_model, proc, tmp_path / "merged", merge=True)
    assert (merged / "model.safetensors").exists() and is_peft_model(peft_model)  # original left wrapped
    m1, p1 = load_policy(adapters)
    m2, _ = load_policy(merged)
    assert is_peft_model(m1) and not is_peft_model(m2) and trainable_parameters(m1)[0] > 0
    with torch.no_grad():
        assert torch.allclose(m1(**x).logits, expected, atol=1e-5)
        assert torch.allclose(m2(**x).logits, expected, atol=1e-4)
    assert p1.tokenizer.convert_tokens_to_ids("<think>") == proc.tokenizer.convert_tokens_to_ids("<think>")


def test_freeze_vision_tower_for_full_finetuning(tiny_policy, video_files):
    from veripo.video.decode import decode_video
    from veripo.video.inputs import build_model_inputs, render_prompt
    from veripo.video.sampling import sampling_for_processor

    model, proc = tiny_policy
    frozen = freeze_vision_tower(model)
    vision = sum(p.numel() for n, p in model.named_parameters() if is_vision_name(n))
    assert frozen == vision > 0
    clip = decode_video(video_files["sq16"], sampling_for_processor(proc, num_frames=4))
    msg = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which way?"}]}]
    batch = build_model_inputs(proc, [render_prompt(proc, msg)], [clip])
    model.train()
    model(**batch).logits.float().pow(2).mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is None for n, g in grads.items() if is_vision_name(n))
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if not is_vision_name(n))


def test_lora_with_trainable_vision_tower(tiny_policy):
    model, _ = tiny_policy
    peft_model = apply_lora(model, freeze_vision=False)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any(is_vision_name(n) for n in trainable) and any("lora_" in n for n in trainable)


from kit_fixtures import tiny_kit_dir, tiny_policy, video_files  # noqa: E402,F401
