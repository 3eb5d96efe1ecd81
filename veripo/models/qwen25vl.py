"""The published configuration of Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct, as data (nothing is downloaded).

The offline kit (``veripo.models.tiny``) builds its twin from these values and the shape twins
(``veripo.models.shape_twin``) their architecture; ``tests/test_models_twin.py`` checks the built kit against an
independent copy of the same values, each with the file it comes from. Sources: the checkpoints'
``tokenizer_config.json`` (``added_tokens_decoder``), ``chat_template.json``, ``generation_config.json``,
``preprocessor_config.json`` and ``config.json`` on the Hugging Face hub (2025 releases).
"""
from __future__ import annotations

# tokenizer_config.json "added_tokens_decoder": 22 added tokens at ids 151643..151664, in this order;
# the first 14 are special (dropped by decode(skip_special_tokens=True)), the tool/FIM ones are not.
FIRST_ADDED_ID = 151643
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True), ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False),
)
# tokenizer_config.json: no BOS, "<|im_end|>" ends a turn, "<|endoftext|>" pads; model_max_length 131072.
EOS_TOKEN, PAD_TOKEN = "<|im_end|>", "<|endoftext|>"
MODEL_MAX_LENGTH = 131072

# config.json "vocab_size": the embedding is padded beyond the 151665 tokens of the tokenizer.
VOCAB_SIZE = {"3B": 151936, "7B": 152064}

# chat_template.json (Qwen2.5-VL-*-Instruct), verbatim.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# generation_config.json (7B-Instruct): the checkpoint's own sampling defaults (near-greedy) and its two stop ids.
GENERATION_CONFIG = {
    "bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
    "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001, "top_k": 1,
}

# preprocessor_config.json: the image processor (the video processor inherits patching and normalisation).
PREPROCESSOR_CONFIG = {
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
}

# config.json: the language model and the vision tower (fields the shape twins need).
_VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "patch_size": 14,
           "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
           "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "hidden_act": "silu"}
CONFIGS = {
    "3B": {"hidden_size": 2048, "intermediate_size": 11008, "num_attention_heads": 16, "num_key_value_heads": 2,
           "num_hidden_layers": 36, "vocab_size": 151936, "tie_word_embeddings": True, "rope_theta": 1000000.0,
           "rms_norm_eps": 1e-06, "max_position_embeddings": 128000, "mrope_section": [16, 24, 24],
           "vision_config": {**_VISION, "out_hidden_size": 2048}},
    "7B": {"hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28, "num_key_value_heads": 4,
           "num_hidden_layers": 28, "vocab_size": 152064, "tie_word_embeddings": False, "rope_theta": 1000000.0,
           "rms_norm_eps": 1e-06, "max_position_embeddings": 128000, "mrope_section": [16, 24, 24],
           "vision_config": {**_VISION, "out_hidden_size": 3584}},
}
TOKEN_IDS = {"bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
             "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
             "video_token_id": 151656}


