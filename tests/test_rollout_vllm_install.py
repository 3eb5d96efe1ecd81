"""The vLLM extra's install story and the adapter refusal (issue 18, defects 4 and 5), on CPU without vLLM.

* an adapter folder would make vLLM serve (and ``veripo eval`` score) the base model: refused, unless the
  caller pushes the policy's weights right after (GRPO's engine: ``VLLMEngine.build`` with the live policy);
* the extra pins the vLLM release whose dependency set is known to resolve with torch 2.13.0 (0.31.0:
  ``torch==2.13.0``, ``torchvision==0.28.0``, ``transformers>=5.10.4,<5.18``; 0.30.0 has no transformers bound);
  README's GPU install is one pinned pip command; ``INSTALL_HINT`` names a file and section that exist.
"""
import json
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from kit_fixtures import tiny_kit_dir  # noqa: F401  (session fixture)
from veripo.errors import VeripoError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def adapter_dir(tiny_kit_dir, tmp_path_factory):
    from veripo.models import apply_lora, load_policy
    from veripo.models.lora import save_policy

    model, processor = load_policy(tiny_kit_dir)
    peft_model = apply_lora(model, r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    out = save_policy(peft_model, processor, tmp_path_factory.mktemp("lora") / "adapter")
    assert (out / "adapter_config.json").exists()
    return out


def test_vllm_engine_on_an_adapter_folder_is_refused_unless_weights_follow(adapter_dir, tiny_kit_dir):
    from veripo.rollout.vllm_engine import VLLMEngine, vllm_model_source

    with pytest.raises(VeripoError, match="LoRA adapter folder; the vLLM engine would load its base model"):
        vllm_model_source(adapter_dir)
    assert vllm_model_source(adapter_dir, weights_synced=True) == json.loads(
        (adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert vllm_model_source(tiny_kit_dir) == str(tiny_kit_dir)
    with pytest.raises(VeripoError, match="LoRA adapter folder"):  # before any vLLM import
        VLLMEngine(adapter_dir)


def test_eval_engine_vllm_on_an_adapter_folder_refuses_and_auto_takes_the_hf_engine(adapter_dir, monkeypatch):
    """``veripo eval --engine vllm`` used to load the base model and score it silently."""
    import torch

    from veripo.eval.cli import build_engine
    from veripo.eval.runner import EvalSettings

    settings = EvalSettings(benchmark="videomme")
    with pytest.raises(VeripoError, match="LoRA adapter folder"):
        build_engine(str(adapter_dir), settings, "vllm")
    # auto on a GPU machine: the engine choice asks first; later calls (weight loading) get the CPU answer
    answers = iter([True])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: next(answers, False))
    engine = build_engine(str(adapter_dir), settings, "auto")
    assert type(engine).__name__ == "HFEngine"
    assert any("lora_A" in n for n, _ in engine.model.named_parameters())  # the adapter is applied


def test_the_vllm_extra_pins_the_release_that_resolves_with_torch_2_13():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["vllm"]
    assert extra == ["vllm==0.31.0"]


def gpu_install_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Installing on a GPU machine")
    end = text.index("\n## ", start + 3)
    return text[start:end]


def test_readme_gpu_install_is_one_pinned_command():
    section = gpu_install_section()
    commands = [line.strip() for line in section.splitlines() if line.strip().startswith("pip install")]
    assert len(commands) == 1, commands
    (command,) = commands
    for pin in ("torch==2.13.0", "torchvision==0.28.0", '".[vllm]"'):
        assert pin in command, (pin, command)
    assert not re.search(r"\btorch(vision)?\b(?!==)", command.replace('".[vllm]"', "")), command  # nothing unpinned


def test_install_hint_points_to_a_file_and_section_in_the_repository():
    from veripo.rollout.vllm_engine import INSTALL_HINT

    named = re.findall(r"[\w./-]+\.md", INSTALL_HINT)
    assert named and all((ROOT / name).exists() for name in named), named
    assert "Installing on a GPU machine" in INSTALL_HINT
    gpu_install_section()  # the section exists
    assert "0.31.0" in INSTALL_HINT and "2.13.0" in INSTALL_HINT
