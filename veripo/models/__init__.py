"""Models: load a policy by path or hub id, LoRA / frozen-ViT training setups, and the offline tiny-model kit.

    from veripo.models import load_policy, build_tiny_kit, apply_lora, save_policy
    kit = build_tiny_kit("runs/tiny")                  # tokenizer + processor + random Qwen2.5-VL, HF format
    model, processor = load_policy(kit)                # or "Qwen/Qwen2.5-VL-7B-Instruct" on a GPU machine

Heavy libraries (torch, transformers, peft) are imported inside the functions, so importing this is cheap.
"""
from veripo.models.load import load_policy, load_processor, resolve_checkpoint
from veripo.models.lora import apply_lora, freeze_vision_tower, is_peft_model, save_policy, trainable_parameters
from veripo.models.tiny import TinyModelSpec, build_tiny_kit
from veripo.models.tokenizer import (CHAT_TEMPLATE, REASONING_TAGS, SPECIAL_TOKENS, VISION_TOKENS, default_corpus,
                                     train_tokenizer)

__all__ = [
    "CHAT_TEMPLATE", "REASONING_TAGS", "SPECIAL_TOKENS", "VISION_TOKENS", "TinyModelSpec", "apply_lora",
    "build_tiny_kit", "default_corpus", "freeze_vision_tower", "is_peft_model", "load_policy", "load_processor",
    "resolve_checkpoint", "save_policy", "train_tokenizer", "trainable_parameters",
]
