"""The tiny kit as a twin of Qwen2.5-VL-Instruct: every value below is written here from the checkpoint's public
configuration files (an independent copy of ``veripo.models.qwen25vl``, so a typo there fails here), then compared
with what the kit builds; and the id-sensitive rollout path (stop at a several-token ``</answer>``) on both forms.

Sources of the expected values (read through the search tool, nothing downloaded):
* tokenizer_config.json ``added_tokens_decoder`` of Qwen/Qwen2.5-VL-7B-Instruct (== 3B): ids 151643..151664
  (quoted e.g. in fblissjr/ComfyUI-QwenImageWanBridge explorations/qwen25vl_tokenizer_analysis_20250905.md);
* generation_config.json and preprocessor_config.json of Qwen2.5-VL-7B-Instruct (a verbatim copy of both in
  remodlai/qwen-2.5-vl-7b-instruct-lexiq, commit a22b9b2);
* config.json of Qwen2.5-VL-3B-Instruct (vocab_size 151936, token ids 151643/151645/151652..151656; quoted in
  the "Qwen/Qwen2.5-VL-3B-Instruct model config" notes found by the code search) and of -7B (vocab 152064);
* chat_template.json of Qwen2.5-VL-*-Instruct (its rendering of the messages below).
"""
from __future__ import annotations

import pytest
import torch

from veripo.models.tiny import TinyModelSpec, build_model, build_processor, generation_config
from veripo.models.tokenizer import train_tokenizer

REAL_ADDED_TOKENS = {  # id: (content, special)
    151643: ("<|endoftext|>", True), 151644: ("<|im_start|>", True), 151645: ("<|im_end|>", True),
    151646: ("<|object_ref_start|>", True), 151647: ("<|object_ref_end|>", True), 151648: ("<|box_start|>", True),
    151649: ("<|box_end|>", True), 151650: ("<|quad_start|>", True), 151651: ("<|quad_end|>", True),
    151652: ("<|vision_start|>", True), 151653: ("<|vision_end|>", True), 151654: ("<|vision_pad|>", True),
    151655: ("<|image_pad|>", True), 151656: ("<|video_pad|>", True), 151657: ("<tool_call>", False),
    151658: ("</tool_call>", False), 151659: ("<|fim_prefix|>", False), 151660: ("<|fim_middle|>", False),
    151661: ("<|fim_suffix|>", False), 151662: ("<|fim_pad|>", False), 151663: ("<|repo_name|>", False),
    151664: ("<|file_sep|>", False),
}
REAL_GENERATION = {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
                   "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001, "top_k": 1}
REAL_PREPROCESSOR = {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                     "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                     "image_std": [0.26862954, 0.26130258, 0.27577711]}
REAL_CONFIG_IDS = {"image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
                   "vision_end_token_id": 151653}


@pytest.fixture(scope="module")
def compact():
    return train_tokenizer(None, vocab_size=512)


@pytest.fixture(scope="module")
def real():
    return train_tokenizer(None, vocab_size=512, real_ids=True)


def test_chat_template_renders_as_the_checkpoints(compact):
    msgs = [{"role": "user", "content": [{"type": "video", "video": "a.mp4"}, {"type": "image"},
                                         {"type": "text", "text": "Which way?"}]},
            {"role": "assistant", "content": "<think>left</think><answer>A</answer>"}]
    assert compact.apply_chat_template(msgs, tokenize=False) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|video_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>Which way?<|im_end|>\n"
        "<|im_start|>assistant\n<think>left</think><answer>A</answer><|im_end|>\n")
    numbered = compact.apply_chat_template(msgs[:1], tokenize=False, add_vision_id=True, add_generation_prompt=True)
    assert "Video 1: <|vision_start|><|video_pad|>" in numbered and "Picture 1: <|vision_start|><|image_pad|>" in numbered
    assert numbered.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("form", ["compact", "real"])
def test_added_tokens_roles_and_tags(form, request):
    tok = request.getfixturevalue(form)
    offset = 151643 if form == "real" else 0
    for real_id, (content, special) in REAL_ADDED_TOKENS.items():
        tid = tok.convert_tokens_to_ids(content)
        assert tid == real_id - 151643 + offset, content
        assert tok.added_tokens_decoder[tid].special is special, content
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):  # ordinary text, as Qwen's '</', 'answer', '>'
        ids = tok.encode(tag, add_special_tokens=False)
        assert len(ids) >= 2 and not set(ids) & set(tok.added_tokens_decoder)
    text = "<think>a</think><answer>B</answer>"
    assert tok.decode(tok.encode(text + "<|im_end|>", add_special_tokens=False), skip_special_tokens=True) == text
    if form == "real":
        assert len(tok) == 151665  # the checkpoint's tokenizer length


def test_real_id_model_generation_and_processor_configs(real):
    spec = TinyModelSpec.checkpoint_twin("7B", num_layers=1, vision_depth=1, hidden_size=32, intermediate_size=64)
    model = build_model(real, spec)
    cfg = model.config
    assert cfg.text_config.vocab_size == 152064 and model.get_input_embeddings().weight.shape[0] == 152064
    assert TinyModelSpec.checkpoint_twin("3B").real_vocab_size == 151936
    for key, value in REAL_CONFIG_IDS.items():
        assert getattr(cfg, key) == value, key
    assert (cfg.text_config.eos_token_id, cfg.text_config.pad_token_id) == (151645, 151643)
    gen = model.generation_config.to_dict()
    for key, value in REAL_GENERATION.items():
        assert gen[key] == value, key
    proc = build_processor(real, spec)
    for p in (proc.image_processor, proc.video_processor):
        assert (p.patch_size, p.merge_size, p.temporal_patch_size) == (14, 2, 2)
        assert list(p.image_mean) == REAL_PREPROCESSOR["image_mean"]
        assert list(p.image_std) == REAL_PREPROCESSOR["image_std"]
        size = p.size if isinstance(p.size, dict) else p.size.__dict__
        assert (size["shortest_edge"], size["longest_edge"]) == (3136, 12845056)


def test_compact_kit_processor_patching_and_generation_roles(compact):
    spec = TinyModelSpec()
    proc = build_processor(compact, spec)
    for p in (proc.image_processor, proc.video_processor):
        assert (p.patch_size, p.merge_size, p.temporal_patch_size) == (14, 2, 2)
        assert list(p.image_mean) == REAL_PREPROCESSOR["image_mean"]
    gen = generation_config(compact).to_dict()
    tid = compact.convert_tokens_to_ids
    assert gen["eos_token_id"] == [tid("<|im_end|>"), tid("<|endoftext|>")] and gen["pad_token_id"] == tid("<|endoftext|>")
    assert {k: gen[k] for k in ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty")} == \
        {k: REAL_GENERATION[k] for k in ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty")}


# ------------------------------------------------------------------ stopping at a several-token </answer>
def _scripted(model, rows: list[list[int]]):
    """Make the LM head emit ``rows[r][step]`` (one script per sequence) whatever the input: a forward hook."""
    state = {"step": 0}

    def hook(module, args, out):
        logits = torch.full_like(out, -1e4)
        step = state["step"]
        for r in range(out.shape[0]):
            script = rows[r % len(rows)]
            logits[r, -1, script[min(step, len(script) - 1)]] = 0.0
        state["step"] += 1
        return logits

    return model.get_output_embeddings().register_forward_hook(hook)


@pytest.mark.parametrize("form", ["compact", "real"])
def test_hf_engine_stops_after_a_several_token_answer_tag(form, request, video_files):
    from veripo.data.schema import Sample
    from veripo.rollout.hf_engine import HFEngine
    from veripo.generation.types import SamplingParams
    from veripo.video.sampling import VideoSampling

    tok = request.getfixturevalue(form)
    spec = (TinyModelSpec.checkpoint_twin("3B") if form == "real" else TinyModelSpec())
    spec = TinyModelSpec(**{**spec.__dict__, "num_layers": 1, "vision_depth": 1, "hidden_size": 32,
                            "intermediate_size": 64, "min_pixels": 3136, "max_pixels": 3136})
    model, proc = build_model(tok, spec), build_processor(tok, spec)
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    answer = enc("<think>red</think><answer>A</answer>")
    straddle = enc("<think>red</think><answer>B</answer><")  # '...', '</', 'answer', '><': the tag ends mid-piece
    assert tok.convert_ids_to_tokens(straddle)[-1] == "><" or tok.decode(straddle[-1:]) == "><"
    scripts = [answer + enc(" more text"), straddle + enc(" tail"), enc("<think>red") + [eos], enc("red red red")]
    sample = Sample(problem_id="1", problem="What colour?", problem_type="free-form", solution="A",
                    path=str(video_files["sq16"]))
    engine = HFEngine(model, proc, VideoSampling(num_frames=2, min_pixels=3136, max_pixels=3136))
    handle = _scripted(model, scripts)
    try:
        (outs,) = engine.generate([sample], n=4, params=SamplingParams(temperature=1.0, max_new_tokens=len(answer) + 4))
    finally:
        handle.remove()
    a, s, e, length = outs
    assert a.token_ids == answer and a.finish_reason == "stop" and a.text == "<think>red</think><answer>A</answer>"
    assert s.token_ids == straddle and s.finish_reason == "stop" and s.text.endswith("</answer><")
    assert e.token_ids == enc("<think>red") + [eos] and e.finish_reason == "stop" and e.text == "<think>red"
    assert length.finish_reason == "length" and len(length.token_ids) == len(answer) + 4
    for c in outs:  # one log-prob per kept token (the scripted token has probability ~1)
        assert len(c.logps) == len(c.token_ids) and max(abs(x) for x in c.logps) < 1e-3
    off = SamplingParams(temperature=1.0, max_new_tokens=len(answer) + 4, stop_at_answer=False)
    handle = _scripted(model, scripts[:1])
    try:
        (free,) = engine.generate([sample], n=1, params=off)
    finally:
        handle.remove()
    assert free[0].finish_reason == "length" and free[0].token_ids[:len(answer)] == answer


from kit_fixtures import video_files  # noqa: E402,F401
