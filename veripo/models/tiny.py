"""The offline tiny-model kit: a random-init Qwen2.5-VL, a locally trained tokenizer and its processor.

``build_tiny_kit(out_dir)`` writes a normal Hugging Face checkpoint directory (``config.json``,
``model.safetensors``, ``generation_config.json``, tokenizer + processor files, ``veripo_tiny_spec.json``)
that ``load_policy`` / ``AutoModelForImageTextToText`` / ``AutoProcessor`` load like any hub model. The
default spec is the one that learned in notes/learning-probe.md (~0.6 M parameters; a step takes < 1 s on
2 CPU cores). Nothing is downloaded; the build is deterministic for a given spec (seed) and corpus.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable

from veripo.config import doc
from veripo.models import qwen25vl as Q


@dataclasses.dataclass
class TinyModelSpec:
    """Architecture and pixel budget of the tiny Qwen2.5-VL (text decoder + ViT) built by ``build_tiny_kit``."""

    hidden_size: int = doc("Language-model hidden size (must be divisible by num_heads).", 128)
    num_layers: int = doc("Language-model decoder layers.", 2)
    num_heads: int = doc("Language-model attention heads.", 4)
    num_kv_heads: int = doc("Language-model key/value heads (GQA; must divide num_heads).", 2)
    intermediate_size: int = doc("Language-model MLP width.", 256)
    vision_depth: int = doc("ViT blocks (the last one uses full attention, the others windowed).", 2)
    vision_hidden: int = doc("ViT hidden size (must be divisible by vision_heads).", 64)
    vision_heads: int = doc("ViT attention heads.", 4)
    patch_size: int = doc("ViT spatial patch size in pixels (frames are resized to multiples of patch*merge).", 14)
    merge_size: int = doc("Spatial merge: merge_size^2 patches become one LM token.", 2)
    temporal_patch_size: int = doc("Frames per temporal patch (frame counts are rounded to a multiple of it).", 2)
    tokens_per_second: int = doc("Temporal mRoPE scale: position ids per second of video.", 2)
    vocab_size: int = doc("BPE vocabulary target for the local tokenizer (the model uses len(tokenizer)).", 512)
    min_pixels: int = doc("Per-frame minimum pixels for the processor (56x56).", 4 * 28 * 28)
    max_pixels: int = doc("Per-frame maximum pixels for the processor (64x64 -> 56x56 frames, 4 tokens each).", 64 * 64)
    seed: int = doc("Seed for the random initialisation (same seed -> identical weights).", 0)
    real_token_ids: bool = doc("Put the added tokens at the checkpoint's ids (<|im_end|> 151645, ...) and pad the "
                               "model vocabulary to real_vocab_size (compact ids 0..21 when false).", False)
    real_vocab_size: int = doc("Model vocabulary with real_token_ids: 151936 (Qwen2.5-VL-3B) or 152064 (7B).",
                               Q.VOCAB_SIZE["3B"])

    @classmethod
    def checkpoint_twin(cls, size: str = "3B", **overrides) -> "TinyModelSpec":
        """The tiny architecture with everything id- and pixel-sensitive as in Qwen2.5-VL-{size}-Instruct: the
        checkpoint's token ids, vocabulary and its preprocessor's pixel budget (3136 .. 12845056 per frame)."""
        values = dict(real_token_ids=True, real_vocab_size=Q.VOCAB_SIZE[size],
                      min_pixels=Q.PREPROCESSOR_CONFIG["min_pixels"], max_pixels=Q.PREPROCESSOR_CONFIG["max_pixels"])
        return cls(**{**values, **overrides})

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.num_kv_heads}")
        if (self.hidden_size // self.num_heads) % 2:
            raise ValueError("head_dim (hidden_size / num_heads) must be even for rotary embeddings")
        if self.vision_hidden % self.vision_heads:
            raise ValueError(f"vision_hidden {self.vision_hidden} is not divisible by vision_heads {self.vision_heads}")
        if self.real_token_ids and self.real_vocab_size < Q.FIRST_ADDED_ID + len(Q.ADDED_TOKENS):
            raise ValueError(f"real_vocab_size {self.real_vocab_size} is below the checkpoint's 151665 tokens")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels {self.min_pixels} > max_pixels {self.max_pixels}")


#: Set (true) in the config.json of every model built here: its vision tower starts from random weights, so
#: ``model.freeze_vision: auto`` trains it (veripo.train.policy_setup.resolve_freeze_vision).
KIT_FLAG = "veripo_tiny_kit"


def mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies into (temporal, height, width) like Qwen2.5-VL (16/24/24 of 64)."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def build_processor(tokenizer, spec: TinyModelSpec):
    """Qwen2_5_VLProcessor with image and video processors sharing the spec's patching and pixel budget."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": spec.min_pixels, "longest_edge": spec.max_pixels}
    common = dict(patch_size=spec.patch_size, merge_size=spec.merge_size, temporal_patch_size=spec.temporal_patch_size,
                  image_mean=list(Q.PREPROCESSOR_CONFIG["image_mean"]), image_std=list(Q.PREPROCESSOR_CONFIG["image_std"]))
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, **common),
        video_processor=Qwen2VLVideoProcessor(size=size, **common),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )


def build_model(tokenizer, spec: TinyModelSpec):
    """A random-init Qwen2_5_VLForConditionalGeneration, seeded (the global torch RNG is left untouched)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    spec.validate()
    tid = tokenizer.convert_tokens_to_ids
    head_dim = spec.hidden_size // spec.num_heads
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=spec.real_vocab_size if spec.real_token_ids else len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
            num_key_value_heads=spec.num_kv_heads, max_position_embeddings=4096,
            bos_token_id=tid("<|endoftext|>"), eos_token_id=tid("<|im_end|>"), pad_token_id=tid("<|endoftext|>"),
            rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": mrope_section(head_dim)},
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            depth=spec.vision_depth, hidden_size=spec.vision_hidden, intermediate_size=2 * spec.vision_hidden,
            num_heads=spec.vision_heads, out_hidden_size=spec.hidden_size, patch_size=spec.patch_size,
            spatial_merge_size=spec.merge_size, temporal_patch_size=spec.temporal_patch_size,
            fullatt_block_indexes=[spec.vision_depth - 1], tokens_per_second=spec.tokens_per_second,
        ),
        image_token_id=tid("<|image_pad|>"), video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"), vision_end_token_id=tid("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    setattr(config, KIT_FLAG, True)  # saved in config.json and kept by every checkpoint trained from this kit
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = generation_config(tokenizer)
    return model.eval()


def generation_config(tokenizer):
    """The checkpoint's generation_config.json (its near-greedy sampling defaults included), ids from ``tokenizer``."""
    from transformers import GenerationConfig

    tid = tokenizer.convert_tokens_to_ids
    values = dict(Q.GENERATION_CONFIG)
    values.update(bos_token_id=tid(Q.PAD_TOKEN), pad_token_id=tid(Q.PAD_TOKEN),
                  eos_token_id=[tid(Q.EOS_TOKEN), tid(Q.PAD_TOKEN)])
    return GenerationConfig(**values)


def build_tiny_kit(out_dir: str | Path, spec: TinyModelSpec | None = None, corpus: Iterable[str] | None = None) -> Path:
    """Build tokenizer + processor + random-init model and save them (HF format) atomically to ``out_dir``.

    ``corpus``: extra text lines for the tokenizer (added to the built-in corpus). Returns ``out_dir``.
    """
    from veripo.models.atomic_dir import atomic_directory
    from veripo.models.tokenizer import train_tokenizer

    spec = spec or TinyModelSpec()
    spec.validate()
    tokenizer = train_tokenizer(corpus, vocab_size=spec.vocab_size, real_ids=spec.real_token_ids)
    processor = build_processor(tokenizer, spec)
    model = build_model(tokenizer, spec)
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "veripo_tiny_spec.json").write_text(json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
    return out
