"""What trains: LoRA adapters on the language model, or full fine-tuning with a frozen vision tower; and saving.

* ``apply_lora(model, ...)`` wraps the model with PEFT LoRA (Hu et al., 2021, "LoRA: Low-Rank Adaptation of
  Large Language Models": W x + (alpha / r) B A x, A: r x d_in, B: d_out x r, B initialised to 0, so the wrapped
  model starts identical to the base). Adapters go only on the language model's linear layers named in
  ``target_modules`` (module names are resolved explicitly, so a vision block that happens to share a name is
  never touched). ``with model.disable_adapter():`` gives the base model back exactly: a free reference model.
* ``freeze_vision_tower(model)``: for full fine-tuning, stop gradients into the ViT (and by default its merger),
  as Qwen2.5-VL RL recipes do.
* ``save_policy(model, processor, out_dir, merge=False)``: adapters only (+ processor) for a LoRA model, or the
  merged / full weights, written atomically. ``load_policy`` reads either form back.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Iterable

VISION_SEGMENTS = ("visual", "vision_tower", "vision_model")
MERGER_SEGMENTS = ("merger", "multi_modal_projector")


def is_vision_name(name: str, include_merger: bool = True) -> bool:
    """True for a parameter/module name inside the vision tower (optionally excluding its merger/projector)."""
    parts = name.split(".")
    if not any(p in VISION_SEGMENTS for p in parts):
        return False
    return include_merger or not any(p in MERGER_SEGMENTS for p in parts)


def language_model_targets(model, target_modules: Iterable[str]) -> list[str]:
    """Full names of the nn.Linear modules outside the vision tower whose last name is in ``target_modules``."""
    import torch.nn as nn

    wanted = set(target_modules)
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and name.split(".")[-1] in wanted and not is_vision_name(name)
             and not name.endswith("lm_head")]
    if not names:
        raise ValueError(f"no language-model linear layer matches target_modules={sorted(wanted)}")
    return names


def freeze_vision_tower(model, include_merger: bool = True) -> int:
    """Set requires_grad=False on the vision tower's parameters; returns how many parameters were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if is_vision_name(name, include_merger):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def apply_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.0,
               target_modules: Iterable[str] = ("q_proj", "k_proj", "v_proj", "o_proj"), freeze_vision: bool = True):
    """Wrap ``model`` with LoRA adapters on the language model; returns the PeftModel.

    All base weights are frozen (PEFT). ``freeze_vision=False`` additionally trains the whole vision tower
    (saved with the adapters via PEFT ``modules_to_save``).
    """
    from peft import LoraConfig, get_peft_model

    targets = language_model_targets(model, target_modules)
    modules_to_save = None
    if not freeze_vision:
        vision = _vision_module_name(model)
        if vision is None:
            raise ValueError("freeze_vision=False but the model has no vision tower")
        modules_to_save = [vision]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none",
                        modules_to_save=modules_to_save)
    return get_peft_model(model, config)


def _vision_module_name(model) -> str | None:
    for name, _ in model.named_modules():
        if name and name.split(".")[-1] in VISION_SEGMENTS:
            return name
    return None


def is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def save_policy(model, processor, out_dir: str | Path, merge: bool = False, state_dict=None) -> Path:
    """Save atomically: LoRA adapters only (``merge=False``) or full weights; the processor alongside.

    ``merge=True`` on a LoRA model saves a merged copy and leaves ``model`` (still wrapped) unchanged.
    Non-finite (or overflowed) weights are refused with :class:`veripo.models.weights_check.NonFiniteError` naming
    the first bad parameter; nothing is written then.
    """
    from veripo.models.atomic_dir import atomic_directory
    from veripo.models.weights_check import check_finite_weights

    out = Path(out_dir)
    check_finite_weights(None if state_dict is not None else model, state_dict, where=out)  # NaN never saved
    with atomic_directory(out) as tmp:
        if is_peft_model(model) and merge:
            copy.deepcopy(model).merge_and_unload().save_pretrained(tmp)
        elif state_dict is not None:  # gathered weights of a partitioned (ZeRO-3) model
            model.save_pretrained(tmp, state_dict=state_dict)
        else:
            model.save_pretrained(tmp)
        if processor is not None:
            processor.save_pretrained(tmp)
    return out
