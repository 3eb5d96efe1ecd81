"""scripts/gpu_check.{sh,py} (issue 18): the 7B shape twin, the MFU arithmetic and the --cpu dry run.

The dry run (``bash scripts/gpu_check.sh --cpu``: every phase, the reduced shape, CPU) is marked slow; the
default run checks the pieces: the 7B twin's widths and parameter count (built on the meta device, no
weights), the FLOP count, the peak table, the token counter, and the generation phase of the dry run.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# loaded from its file: putting scripts/ on sys.path would make scripts/deepspeed/ (JSON configs) importable as a
# "deepspeed" namespace package, and the DeepSpeed tests would think DeepSpeed is installed
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check
_spec.loader.exec_module(gpu_check)


@pytest.fixture(scope="module")
def tokenizer():
    from veripo.models.tokenizer import train_tokenizer

    return train_tokenizer(vocab_size=300)


def test_the_7b_twin_has_qwen2_5_vl_7bs_widths_and_parameter_count(tokenizer):
    from transformers import Qwen2_5_VLForConditionalGeneration

    shape = gpu_check.SHAPES["7b"]
    config = gpu_check.twin_config(shape, tokenizer)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_attention_heads, text.num_key_value_heads, text.intermediate_size) == (
        3584, 28, 4, 18944)
    assert text.vocab_size == 152064 and shape.head_dim == 128 and not config.tie_word_embeddings
    assert text.rope_parameters["mrope_section"] == [16, 24, 24] and text.rope_parameters["rope_theta"] == 1e6
    assert (vision.hidden_size, vision.num_heads, vision.intermediate_size, vision.out_hidden_size) == (
        1280, 16, 3420, 3584)
    assert 1 <= text.num_hidden_layers <= 2 and vision.depth < 32
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    h, kv, f, v = 3584, 4 * 128, 18944, 152064
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * f + 2 * h  # q (bias), k, v (bias), o, MLP, 2 norms
    assert gpu_check.lm_matmul_params(model) == shape.layers * layer + h + v * h  # + final norm + untied head


def test_mfu_and_the_peak_table():
    assert gpu_check.mfu(6e12, 2.0, 1e12) == pytest.approx(3.0)
    assert gpu_check.mfu(1.0, 1.0, None) is None
    assert next(v for k, v in gpu_check.PEAK_BF16.items() if k in "NVIDIA H200") == pytest.approx(989.4e12)
    assert gpu_check.device_peak("cpu", None) == ("cpu", None)
    assert gpu_check.close(1.01, 1.0) and not gpu_check.close(1.2, 1.0)


def test_train_tokens_counts_non_padding_tokens_in_train_mode_only():
    class Qwen2_5_VLForConditionalGeneration(torch.nn.Module):  # the counter looks for this class name
        def forward(self, input_ids=None, attention_mask=None):
            return input_ids

    model = Qwen2_5_VLForConditionalGeneration()
    counter = gpu_check.TrainTokens(model)
    ids, mask = torch.ones(2, 5, dtype=torch.long), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    model.train()
    model(input_ids=ids, attention_mask=mask)
    model.eval()
    model(input_ids=ids, attention_mask=mask)  # generation / reference passes: not counted
    counter.close()
    model.train()
    model(input_ids=ids, attention_mask=mask)  # hook removed
    assert counter.count == 8


def test_dry_run_generation_phase(tmp_path):
    out = tmp_path / "gen.json"
    assert gpu_check.main(["--cpu", "--phases", "generate", "--json", str(out), "--work", str(tmp_path / "w")]) == 0
    result = json.loads(out.read_text())
    gen = result["generate"]
    assert result["shape"] == "cpu" and result["device"] == "cpu" and gen["mfu"] is None
    assert gen["generated_tokens"] == gen["sequences"] * result["sizes"]["tokens"]  # a random twin never stops
    assert gen["tokens_per_s"] > 0 and gen["lm_params"] > 0


def test_unknown_phase_and_no_gpu_are_clear_errors(capsys):
    assert gpu_check.main(["--cpu", "--phases", "warp"]) == 2
    assert "unknown phase" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert gpu_check.main([]) == 2
        assert "no CUDA device; use --cpu" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_check_sh_cpu_dry_run_runs_every_phase(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--cpu", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    for phase in gpu_check.PHASES:
        assert phase in result, phase
    for phase in ("grpo-lora", "grpo-full", "dpo-lora", "dpo-full"):
        assert result[phase]["step_s"] > 0 and result[phase]["lm_params"] > 0
    assert result["grpo-full"]["train_tokens_per_step"] > 0 and result["dpo-full"]["train_tokens_per_step"] > 0
    parity = result["parity"]
    assert parity["ok"] and parity["rollouts_equal"] and parity["dpo"]["close"]
    assert "gpu_check: ok on cpu" in proc.stdout
