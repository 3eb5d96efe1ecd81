"""load_policy / load_processor: local paths, dtypes, and clear errors offline."""
import pytest
import torch

from veripo.errors import VeripoError
from veripo.models.load import load_policy, load_processor, resolve_checkpoint


def test_load_policy_from_local_dir(tiny_kit_dir):
    model, proc = load_policy(tiny_kit_dir, dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert type(proc).__name__ == "Qwen2_5_VLProcessor" and proc.tokenizer.padding_side == "left"
    model32, _ = load_policy(str(tiny_kit_dir))                       # "auto" on CPU -> float32
    assert next(model32.parameters()).dtype == torch.float32


def test_load_processor_only(tiny_kit_dir):
    proc = load_processor(tiny_kit_dir)
    assert proc.video_processor.temporal_patch_size == 2


def test_missing_path_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VeripoError, match="not found"):
        load_policy(tmp_path / "no-such-checkpoint")
    with pytest.raises(VeripoError, match="HF_HUB_OFFLINE"):
        load_policy("someone/not-a-cached-model")


def test_a_file_or_an_empty_dir_is_not_a_checkpoint(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(VeripoError, match="not a checkpoint directory"):
        resolve_checkpoint(tmp_path / "weights.bin")
    with pytest.raises(VeripoError, match="no config.json"):
        resolve_checkpoint(tmp_path)


def test_bad_dtype_and_device(tiny_kit_dir):
    with pytest.raises(VeripoError, match="dtype"):
        load_policy(tiny_kit_dir, dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(VeripoError, match="CUDA"):
            load_policy(tiny_kit_dir, device="cuda")


def test_text_only_checkpoint_falls_back_to_causal_lm_and_tokenizer(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from veripo.models.tokenizer import train_tokenizer

    tok = train_tokenizer(None, vocab_size=300)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "judge")
    tok.save_pretrained(tmp_path / "judge")
    model, processor = load_policy(tmp_path / "judge")
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert processor.padding_side == "left" and processor.convert_tokens_to_ids("<|im_end|>") == tok.convert_tokens_to_ids("<|im_end|>")


from kit_fixtures import tiny_kit_dir  # noqa: E402,F401
