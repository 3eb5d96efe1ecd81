"""Shape twins: random-init Qwen2.5-VL-3B / -7B at their true widths with few layers, so that a shape or dtype
bug at real width (hidden 2048 / 3584, GQA 16:2 / 28:4, intermediate 11008 / 18944, mRoPE sections 16/24/24 of a
128-wide head, ViT 1280 wide with 16 heads, merger into the LM width, vocabulary 151936 / 152064 with the
checkpoint's token ids) shows on a CPU before a GPU run.

Depth is the only thing cut: ``num_layers`` decoder layers (1-2) and ``vision_depth`` ViT blocks (the real tower
has 32, full attention at 7, 15, 23, 31; a twin keeps the real windowed/full pattern, with its last block full:
depth 2 -> one windowed block, one full-attention block). With 2 decoder layers and 2 ViT blocks the 7B twin holds
1.64 B parameters (3.1 GiB in bfloat16; the untied 152064 x 3584 embedding and LM head are 1.09 B of them), the 3B
twin 0.54 B (1.0 GiB); the full 32-block tower (0.59 B more) also fits in 24 GB but makes a CPU step at
448x448 x 16 frames take many minutes, so the twins cut it too.

    model, processor = build_shape_twin("7B", num_layers=2, vision_depth=2, dtype="bfloat16")
"""
from __future__ import annotations

from veripo.models import qwen25vl as Q


def shape_twin_config(size: str = "3B", num_layers: int = 2, vision_depth: int = 2):
    """The checkpoint's ``Qwen2_5_VLConfig`` with ``num_layers`` decoder layers and ``vision_depth`` ViT blocks."""
    from transformers import Qwen2_5_VLConfig

    if size not in Q.CONFIGS:
        raise ValueError(f"size must be one of {sorted(Q.CONFIGS)}, got {size!r}")
    if num_layers < 1 or vision_depth < 1:
        raise ValueError("num_layers and vision_depth must be >= 1")
    real = Q.CONFIGS[size]
    vision = dict(real["vision_config"])
    full = [i for i in vision["fullatt_block_indexes"] if i < vision_depth - 1] + [vision_depth - 1]
    vision.update(depth=vision_depth, fullatt_block_indexes=full)
    text = {k: real[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                                  "vocab_size", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings")}
    text.update(num_hidden_layers=num_layers, bos_token_id=Q.TOKEN_IDS["bos_token_id"],
                eos_token_id=Q.TOKEN_IDS["eos_token_id"], pad_token_id=Q.FIRST_ADDED_ID,
                rope_parameters={"rope_type": "default", "rope_theta": real["rope_theta"],
                                 "mrope_section": list(real["mrope_section"])})
    ids = {k: v for k, v in Q.TOKEN_IDS.items() if k not in ("bos_token_id", "eos_token_id", "vision_token_id")}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=real["tie_word_embeddings"],
                            **ids)


def build_shape_twin(size: str = "3B", num_layers: int = 2, vision_depth: int = 2, dtype: str = "bfloat16",
                     seed: int = 0, corpus=None):
    """(model, processor): random weights in ``dtype`` (built directly in it: no float32 copy), the twin
    tokenizer at the checkpoint's ids, the checkpoint's processor settings. Deterministic for a seed."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from veripo.models.tiny import TinyModelSpec, build_processor, generation_config
    from veripo.models.tokenizer import train_tokenizer

    config = shape_twin_config(size, num_layers, vision_depth)
    tokenizer = train_tokenizer(corpus, real_ids=True)
    processor = build_processor(tokenizer, TinyModelSpec.checkpoint_twin(size))
    from transformers.initialization import no_init_weights

    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with no_init_weights():  # HF's per-module init is minutes at this size on a CPU; ours is one pass
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif param.dim() == 1:  # RMSNorm scales
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=gen)
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = generation_config(tokenizer)
    return model.eval(), processor
