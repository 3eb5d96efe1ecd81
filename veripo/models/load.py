"""Load a policy (model + processor) by local path or Hugging Face hub id with the standard Auto classes.

``load_policy(path_or_id)`` -> (model, processor). The model comes from ``AutoModelForImageTextToText``
(Qwen2.5-VL and other video/image LLMs), falling back to ``AutoModelForCausalLM`` for text-only checkpoints;
the processor from ``AutoProcessor``, falling back to ``AutoTokenizer``. A directory written by
``save_policy`` with LoRA adapters (``adapter_config.json``) is loaded as base model + adapters.

Nothing here forces a download: a hub id is fetched only when the environment allows it (users' GPU
machines). With ``HF_HUB_OFFLINE=1`` (tests, air-gapped clusters) a path that does not exist and a hub id
that is not in the local cache fail fast with a ``VeripoError`` that says so.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from veripo.errors import VeripoError

DTYPES = ("auto", "float32", "bfloat16", "float16")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def hub_offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_checkpoint(name_or_path: str | Path) -> str:
    """A local checkpoint directory (as a string) or a hub id; raises VeripoError when it can't be found."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise VeripoError(f"{path}: is a file, not a checkpoint directory")
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise VeripoError(f"{path}: not a Hugging Face checkpoint (no config.json or adapter_config.json)")
        return str(path)
    looks_local = text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text or not _HUB_ID.match(text)
    if looks_local:
        raise VeripoError(f"{text}: checkpoint directory not found")
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(text, "config.json")
        if not isinstance(cached, str):
            raise VeripoError(
                f"{text}: not a local directory and not in the Hugging Face cache, and HF_HUB_OFFLINE is set; "
                f"download it first (huggingface-cli download {text}) or pass a local checkpoint path"
            )
    return text


def resolve_dtype(dtype: str, device: str):
    """'auto' -> bfloat16 on a CUDA device that supports it (else float16 on CUDA), float32 on CPU."""
    import torch

    if dtype not in DTYPES:
        raise VeripoError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "auto":
        if str(device).startswith("cuda") and torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise VeripoError(f"device {device!r} requested but CUDA is not available (use device='cpu')")
    return str(device)


def load_processor(name_or_path: str | Path):
    """The checkpoint's processor (``AutoProcessor``; a tokenizer for text-only checkpoints), left padding."""
    from transformers import AutoProcessor, AutoTokenizer

    source = resolve_checkpoint(name_or_path)
    try:
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError, TypeError) as first:
        try:
            processor = AutoTokenizer.from_pretrained(source)
        except Exception:
            raise VeripoError(f"{source}: cannot load a processor or tokenizer: {first}") from first
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"  # batched generation appends right after each prompt
    return processor


def _load_model(source: str, dtype, attn_implementation: str | None, device: str = "cpu"):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": dtype}
    if device.startswith("cuda"):
        kwargs["device_map"] = device  # load the weights straight onto the GPU
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except ValueError as vision_error:  # config class not an image-text-to-text model: a text-only LLM
        try:
            return AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except ValueError:
            raise VeripoError(f"{source}: unsupported model type: {vision_error}") from vision_error
    except OSError as e:
        raise VeripoError(f"{source}: cannot load model weights: {e}") from e


def load_policy(name_or_path: str | Path, dtype: str = "auto", device: str = "cpu",
                attn_implementation: str | None = None, merge_adapters: bool = False, trainable_adapters: bool = True):
    """Load (model, processor) from a local directory or hub id.

    dtype: "auto" | "float32" | "bfloat16" | "float16" ("auto": bf16 on CUDA, fp32 on CPU).
    device: "cpu", "cuda", "cuda:N" or "auto". attn_implementation: e.g. "sdpa", "flash_attention_2", "eager"
    (None: transformers' default). For an adapter directory (``adapter_config.json``): the base model named in
    it is loaded and the adapters applied (trainable unless ``trainable_adapters=False``); ``merge_adapters=True``
    folds them into the weights and returns a plain model.
    """
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    source = resolve_checkpoint(name_or_path)
    adapter_config = Path(source) / "adapter_config.json"
    if adapter_config.exists():
        from peft import PeftModel

        base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
        if not base:
            raise VeripoError(f"{adapter_config}: no base_model_name_or_path; cannot tell which base model to load")
        model = _load_model(resolve_checkpoint(base), torch_dtype, attn_implementation, device)
        model = PeftModel.from_pretrained(model, source, is_trainable=trainable_adapters and not merge_adapters)
        if merge_adapters:
            model = model.merge_and_unload()
        has_processor = (Path(source) / "processor_config.json").exists() or (Path(source) / "tokenizer_config.json").exists()
        processor = load_processor(source if has_processor else base)
    else:
        model = _load_model(source, torch_dtype, attn_implementation, device)
        processor = load_processor(source)
    return model.to(device), processor
