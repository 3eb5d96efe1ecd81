"""``model.freeze_vision``: true / false / auto; auto trains the vision tower of a tiny kit (random init) and
freezes it for any other checkpoint (the VerIPO setting for a pretrained Qwen2.5-VL)."""
from __future__ import annotations

import json

import pytest

from tests.kit_fixtures import build_kit_once
from veripo.config import ConfigError, load_config
from veripo.train.policy_setup import ModelConfig, load_trainable_policy, resolve_freeze_vision


def _vision_trainable(model) -> bool:
    return any(p.requires_grad for n, p in model.named_parameters() if "visual" in n)


@pytest.mark.parametrize("word, expected", [("auto", "auto"), ("false", False), ("TRUE", True), ("no", False)])
def test_freeze_vision_accepts_true_false_auto(word, expected):
    assert load_config(ModelConfig, None, [f"freeze_vision={word}"]).freeze_vision == expected


def test_freeze_vision_refuses_other_words():
    with pytest.raises(ConfigError, match="freeze_vision"):
        ModelConfig(freeze_vision="sometimes")


def test_auto_is_the_default_and_freezes_unmarked_checkpoints():
    class Plain:  # a pretrained checkpoint's config: no kit flag
        pass

    class Kit:
        veripo_tiny_kit = True

    assert ModelConfig().freeze_vision == "auto"
    assert resolve_freeze_vision("auto", Plain()) is True
    assert resolve_freeze_vision("auto", Kit()) is False
    assert resolve_freeze_vision(True, Kit()) is True


def test_a_tiny_kit_marks_itself_and_auto_trains_its_vision_tower():
    kit = build_kit_once()
    assert json.loads((kit / "config.json").read_text())["veripo_tiny_kit"] is True
    model, _ = load_trainable_policy(ModelConfig(path=str(kit), device="cpu"))
    assert _vision_trainable(model)
    model, _ = load_trainable_policy(ModelConfig(path=str(kit), device="cpu", freeze_vision=True))
    assert not _vision_trainable(model)
