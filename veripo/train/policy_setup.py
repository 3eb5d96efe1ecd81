"""Load the policy a stage trains: by path or hub id, LoRA or full fine-tuning, frozen vision tower."""
from __future__ import annotations

import dataclasses

import torch

from veripo.config import doc, require
from veripo.errors import ConfigError


@dataclasses.dataclass
class ModelConfig:
    path: str = doc("Checkpoint directory or hub id of the policy (e.g. Qwen/Qwen2.5-VL-7B-Instruct on a GPU machine).", "")
    dtype: str = doc("auto | float32 | bfloat16 | float16 (auto: bf16 on CUDA, fp32 on CPU).", "auto")
    device: str = doc("cpu | cuda | cuda:N | auto.", "auto")
    attn_implementation: str | None = doc("Attention kernel (sdpa, flash_attention_2, eager); null = transformers' default.", None)
    lora: bool = doc("Train LoRA adapters on the language model instead of all weights.", False)
    lora_r: int = doc("LoRA rank.", 16)
    lora_alpha: int = doc("LoRA alpha (scale = alpha / r).", 32)
    lora_dropout: float = doc("LoRA dropout.", 0.0)
    lora_targets: list[str] = doc("Module names that get adapters.",
                                  default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    freeze_vision: bool | str = doc(
        "Freeze the vision tower (and its merger): true | false | auto. auto (default) freezes it for a pretrained "
        "checkpoint (the VerIPO/MM-EUREKA setting) and trains it for a random-init kit from `veripo model build-tiny` "
        "(its config.json carries veripo_tiny_kit: true, kept by every checkpoint trained from it), whose vision "
        "tower started from random weights.", "auto")
    gradient_checkpointing: bool = doc("Trade compute for memory on large models.", False)

    def check(self, prefix: str = "") -> None:
        from veripo.models.load import DTYPES

        p = prefix
        require(self.dtype in DTYPES, f"{p}dtype", self.dtype, f"must be one of {' | '.join(DTYPES)}")
        require(self.device == "auto" or self.device == "cpu" or self.device.split(":")[0] in ("cuda", "mps"),
                f"{p}device", self.device, "must be cpu | cuda | cuda:N | auto")
        require(self.lora_r >= 1, f"{p}lora_r", self.lora_r, "the LoRA rank must be >= 1")
        require(self.lora_alpha > 0, f"{p}lora_alpha", self.lora_alpha, "must be > 0 (scale = alpha / r)")
        require(0 <= self.lora_dropout < 1, f"{p}lora_dropout", self.lora_dropout, "must be in [0, 1)")
        require(not self.lora or bool(self.lora_targets), f"{p}lora_targets", self.lora_targets,
                "name the modules that get adapters, e.g. [q_proj, k_proj, v_proj, o_proj]")

    def __post_init__(self) -> None:
        self.freeze_vision = _freeze_setting(self.freeze_vision)


_FREEZE_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
                 "0": False, "auto": "auto"}


def _freeze_setting(value: bool | str) -> bool | str:
    """``True``/``False``/``"auto"`` from a bool or a config word; anything else is a ConfigError."""
    from veripo.config import ConfigError

    if isinstance(value, bool):
        return value
    word = _FREEZE_WORDS.get(str(value).strip().lower())
    if word is None:
        raise ConfigError(f"model.freeze_vision: expected true, false or auto, got {value!r}")
    return word


def resolve_freeze_vision(setting: bool | str, model_config) -> bool:
    """``auto`` -> freeze, unless the checkpoint's config marks it as a tiny kit (random-init vision tower)."""
    from veripo.models.tiny import KIT_FLAG

    if setting != "auto":
        return bool(setting)
    return not bool(getattr(model_config, KIT_FLAG, False))


def load_trainable_policy(cfg: ModelConfig):
    """(model, processor) ready to train: LoRA or full, vision frozen as configured, in train mode."""
    from veripo.models import load_policy
    from veripo.models.lora import apply_lora, freeze_vision_tower

    if not cfg.path:
        raise ConfigError("model.path is empty: give a checkpoint directory or hub id")
    model, processor = load_policy(cfg.path, dtype=cfg.dtype, device=cfg.device,
                                   attn_implementation=cfg.attn_implementation)
    freeze = resolve_freeze_vision(cfg.freeze_vision, model.config)
    if cfg.lora:
        if not hasattr(model, "peft_config"):
            model = apply_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                               target_modules=tuple(cfg.lora_targets), freeze_vision=freeze)
    elif freeze:
        freeze_vision_tower(model)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    model.train()
    return model, processor


def model_device(model) -> torch.device:
    return next(model.parameters()).device
