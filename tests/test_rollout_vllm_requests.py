"""The vLLM engine's request building, output conversion and weight sync, on CPU without vLLM.

Real parts: decoded mp4 clips, the tiny kit's processor and model (also wrapped in PEFT), the real ``openai``
client against servers on 127.0.0.1 (``veripo serve-judge`` on the tiny model, and a recording server that
answers like vLLM's OpenAI server). vLLM itself is GPU-only, so its ``RequestOutput`` and ``LLM`` are stood in
for by plain objects with vLLM's attribute layout (see tests/test_gpu_vllm_smoke.py for the real thing).
"""
import base64
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fastapi import FastAPI

from kit_fixtures import tiny_kit_dir, write_videos_once  # noqa: F401,F811  (session fixtures)
from veripo.data.schema import Sample
from veripo.errors import VeripoError
from veripo.generation.types import SamplingParams
from veripo.rollout.vllm_requests import (build_vllm_prompt, chat_messages_for_server, chat_request,
                                          completion_from_vllm, completions_from_chat, completions_from_vllm,
                                          continuation_request, sampling_params_dict, video_item, vllm_weight_items, vllm_weight_name)
from veripo.video.decode import decode_video
from veripo.video.sampling import VideoSampling


@pytest.fixture(scope="module")
def clip():
    return decode_video(write_videos_once()["sq16"], VideoSampling(num_frames=8, max_pixels=56 * 56, min_pixels=None))


@pytest.fixture(scope="module")
def kit_processor(tiny_kit_dir):
    from veripo.models.load import load_processor

    return load_processor(tiny_kit_dir)


def video_sample(pid="v1"):
    return Sample(problem_id=pid, problem="Which way does the square move?", problem_type="multiple choice",
                  solution="<answer>B</answer>", data_type="video", options=["A. left", "B. right"],
                  path=str(write_videos_once()["sq16"]))


def text_sample(pid="t1"):
    return Sample(problem_id=pid, problem="What is 2 + 3?", problem_type="numerical", solution="5", data_type="text")


# ------------------------------------------------------------------------------------------ prompts
def test_video_prompt_carries_frames_and_metadata_that_give_the_right_temporal_grid(clip, kit_processor):
    from transformers.video_utils import VideoMetadata

    from veripo.prompts import chat_messages
    from veripo.video.inputs import build_model_inputs, render_prompt

    text = render_prompt(kit_processor, chat_messages(video_sample()))
    req = build_vllm_prompt(text, [clip])
    frames, meta = req["multi_modal_data"]["video"]
    assert frames is clip.frames and frames.shape == (8, 56, 56, 3) and frames.dtype == np.uint8
    assert meta["total_num_frames"] == 16 and meta["fps"] == pytest.approx(8.0)
    assert meta["frames_indices"] == clip.indices and len(meta["frames_indices"]) == 8
    assert req["mm_processor_kwargs"] == {"do_sample_frames": False}  # the default; no fps (sampling is off)
    # a processor that reads the metadata (transformers >= 5) gets the same batch as our HF engine
    via_dict = kit_processor(text=[text], videos=[frames], video_metadata=[VideoMetadata(**meta)],
                             return_tensors="pt", **req["mm_processor_kwargs"])
    ours = build_model_inputs(kit_processor, [text], [clip])
    assert via_dict["second_per_grid_ts"] == pytest.approx([2 / clip.sampled_fps])  # 8 of 16 frames at 8 fps: 0.5 s
    assert torch.equal(via_dict["video_grid_thw"], ours["video_grid_thw"])
    assert torch.equal(via_dict["pixel_values_videos"], ours["pixel_values_videos"])


def test_bare_frames_mode_is_refused_because_vllm_needs_the_metadata(tiny_kit_dir, kit_processor, clip):
    """Defect 1 (issue 18): vLLM 0.31's Qwen2.5-VL processor fails on bare frames ("Video metadata is
    required"), so the engine refuses the mode and every video goes as (frames, metadata)."""
    from veripo.rollout.vllm_engine import VLLMEngine

    with pytest.raises(VeripoError, match="Video metadata is required"):
        VLLMEngine(tiny_kit_dir, llm=SimpleNamespace(), processor=kit_processor, video_metadata=False)
    frames, meta = video_item(clip)
    assert frames is clip.frames and meta["frames_indices"] == clip.indices
    with pytest.raises(TypeError):
        build_vllm_prompt("<|vision_start|><|video_pad|><|vision_end|>Q", [clip], with_metadata=False)


def test_requests_carry_the_hf_paths_processor_settings_so_both_see_the_same_frames(tiny_kit_dir, kit_processor):
    """Defect 2 (issue 18): the request's mm_processor_kwargs are the HF path's (no second frame sampling, no
    total-video pixel cap), so even a checkpoint whose video processor samples frames by default
    (do_sample_frames=True) turns the request into the batch the training forward sees."""
    import copy

    from transformers.video_utils import VideoMetadata

    from veripo.rollout.vllm_engine import VLLMEngine
    from veripo.video.inputs import build_model_inputs, video_processor_kwargs

    sampling = VideoSampling(num_frames=8, max_pixels=56 * 56, min_pixels=None)
    engine = VLLMEngine(tiny_kit_dir, sampling, llm=SimpleNamespace(), processor=kit_processor)
    (req,) = engine.vllm_inputs([video_sample()])
    kwargs = req["mm_processor_kwargs"]
    assert kwargs == video_processor_kwargs(kit_processor) and kwargs["do_sample_frames"] is False
    assert "fps" not in kwargs
    assert kwargs.get("cap_pixels_per_frame", False) is False  # transformers >= 5.22 would cap by default
    frames, meta = req["multi_modal_data"]["video"]
    sampling_processor = copy.deepcopy(kit_processor)
    sampling_processor.video_processor.do_sample_frames = True  # e.g. a checkpoint saved with it on
    sampling_processor.video_processor.fps = 2.0
    # what vLLM's Qwen2.5-VL processing does with the request: processor(text, videos, metadata, **kwargs)
    via_vllm = sampling_processor(text=[req["prompt"]], videos=[frames], video_metadata=[VideoMetadata(**meta)],
                                  return_tensors="pt", **kwargs)
    clip = engine.frame_cache.get(video_sample().path, sampling)
    ours = build_model_inputs(kit_processor, [req["prompt"]], [clip])
    assert torch.equal(via_vllm["input_ids"], ours["input_ids"])  # same token count
    assert torch.equal(via_vllm["video_grid_thw"], ours["video_grid_thw"])
    assert torch.equal(via_vllm["pixel_values_videos"], ours["pixel_values_videos"])
    assert via_vllm["second_per_grid_ts"] == pytest.approx([0.5])  # 8 of 16 frames at 8 fps


def test_text_prompt_has_no_multimodal_fields_and_placeholder_mismatch_is_named(clip):
    assert build_vllm_prompt("plain question") == {"prompt": "plain question"}
    with pytest.raises(ValueError, match="1 video and 0 image placeholder"):
        build_vllm_prompt("<|video_pad|> Q", [])
    with pytest.raises(ValueError, match="0 video and 0 image placeholder"):
        build_vllm_prompt("Q", [clip])


# ------------------------------------------------------------------------------------------ sampling
def test_sampling_params_dict():
    d = sampling_params_dict(SamplingParams(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=64), n=8, seed=3)
    assert d == {"n": 8, "temperature": 0.7, "top_p": 0.9, "top_k": 0, "max_tokens": 64, "skip_special_tokens": True,
                 "stop": ["</answer>"], "include_stop_str_in_output": True, "logprobs": 0, "seed": 3}
    d = sampling_params_dict(SamplingParams(temperature=0.0, top_k=20, stop_at_answer=False), logprobs=False)
    assert d["top_k"] == 20 and d["temperature"] == 0.0 and "stop" not in d and "logprobs" not in d and "seed" not in d
    assert sampling_params_dict(SamplingParams(repetition_penalty=1.05))["repetition_penalty"] == 1.05
    with pytest.raises(ValueError):
        sampling_params_dict(SamplingParams(), n=0)


# ------------------------------------------------------------------------------------------ outputs
def vllm_output(token_ids, logps, text="<think>x</think><answer>B</answer>", finish="stop", extra_candidates=True):
    """An object shaped like vllm.CompletionOutput: logprobs is a list of {token_id: Logprob(logprob=...)}."""
    entries = []
    for tid, lp in zip(token_ids, logps):
        entry = {tid: SimpleNamespace(logprob=lp, rank=1, decoded_token="t")}
        if extra_candidates:  # vLLM may add top candidates besides the sampled token
            entry[tid + 1] = SimpleNamespace(logprob=lp - 1.0, rank=2, decoded_token="u")
        entries.append(entry)
    return SimpleNamespace(text=text, token_ids=tuple(token_ids), logprobs=entries, finish_reason=finish)


def test_completion_from_vllm_picks_the_sampled_tokens_logprob():
    c = completion_from_vllm(vllm_output([5, 9, 2], [-0.1, -2.5, -0.7], text="  <answer>B</answer>\n"))
    assert c.token_ids == [5, 9, 2] and c.logps == [-0.1, -2.5, -0.7]
    assert c.text == "<answer>B</answer>" and c.finish_reason == "stop"
    assert completion_from_vllm(vllm_output([1], [-1.0], finish="length")).finish_reason == "length"
    no_lp = SimpleNamespace(text="a", token_ids=[1, 2], logprobs=None, finish_reason=None)
    assert completion_from_vllm(no_lp).logps == [] and completion_from_vllm(no_lp).finish_reason == "length"


def test_completion_from_vllm_rejects_nan_and_misaligned_logprobs():
    with pytest.raises(ValueError, match="NaN"):
        completion_from_vllm(vllm_output([1, 2], [-1.0, float("nan")]))
    bad = vllm_output([1, 2], [-1.0, -2.0])
    bad.logprobs = bad.logprobs[:1]
    with pytest.raises(ValueError, match="1 log-probs for 2 tokens"):
        completion_from_vllm(bad)


def test_completions_from_vllm_groups_per_request_and_checks_n():
    outs = [SimpleNamespace(outputs=[vllm_output([i, j], [-0.5, -0.25]) for j in range(3)]) for i in range(2)]
    groups = completions_from_vllm(outs, n=3)
    assert [len(g) for g in groups] == [3, 3] and groups[1][2].token_ids == [1, 2]
    with pytest.raises(ValueError, match="returned 3 completions, expected n=4"):
        completions_from_vllm(outs, n=4)


# ------------------------------------------------------------------------------------------ weights
def test_weight_names_of_plain_and_merged_peft_policy_are_the_checkpoint_names(tiny_kit_dir):
    from veripo.models import apply_lora, load_policy
    from veripo.models.load import load_policy as load
    from veripo.rollout.vllm_engine import merged_adapters

    plain, _ = load(tiny_kit_dir)
    plain_names = [n for n, _ in plain.named_parameters()]
    assert [n for n, _ in vllm_weight_items(plain.named_parameters())] == plain_names
    model, _ = load_policy(tiny_kit_dir)
    peft_model = apply_lora(model, r=4, alpha=8, target_modules=("q_proj", "v_proj"))
    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    for p in lora_b:  # make the adapters non-zero so merging changes the weights
        torch.nn.init.normal_(p, std=0.05)
    base_q = dict(peft_model.named_parameters())
    q_name = next(n for n in base_q if n.endswith("q_proj.base_layer.weight"))
    before = base_q[q_name].detach().clone()
    with merged_adapters(peft_model):
        items = dict(vllm_weight_items(peft_model.named_parameters()))
        merged = items[vllm_weight_name(q_name)].clone()
    assert sorted(items) == sorted(plain_names)
    assert not torch.allclose(merged, before)  # vLLM receives base + B A * scale ...
    assert torch.allclose(dict(peft_model.named_parameters())[q_name], before, atol=1e-6)  # ... and it is undone


class InProcessLLM:
    """Stands in for a colocated vllm.LLM: same attribute path to the worker's model; its load_weights
    copies by name into a real tiny model, like vLLM's loader does into its own parameters."""

    def __init__(self, target):
        def load_weights(weights):
            params = dict(target.named_parameters())
            for name, tensor in weights:
                params[name].data.copy_(tensor)
            self.loaded.append(len(weights))

        self.loaded, self.resets, self.encoder_resets = [], 0, 0
        model = SimpleNamespace(load_weights=load_weights)
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(
            driver_worker=SimpleNamespace(worker=SimpleNamespace(model_runner=SimpleNamespace(model=model)))),
            reset_encoder_cache=self.reset_encoder_cache)

    def reset_prefix_cache(self):
        self.resets += 1

    def reset_encoder_cache(self):  # vLLM 0.31 has it on LLMEngine (llm.llm_engine), not on LLM
        self.encoder_resets += 1


def test_sync_weights_copies_the_policy_into_the_worker_model_and_resets_the_caches(tiny_kit_dir):
    """Defect 3 (issue 18): besides the prefix cache, the encoder cache (vision embeddings computed with the
    old weights) is reset, so a trained vision tower's new embeddings reach later rollouts."""
    from veripo.models.load import load_policy
    from veripo.rollout.vllm_engine import VLLMEngine, find_inprocess_model

    policy, processor = load_policy(tiny_kit_dir)
    served, _ = load_policy(tiny_kit_dir)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01)  # "one policy update"
    llm = InProcessLLM(served)
    assert find_inprocess_model(llm) is not None
    engine = VLLMEngine(tiny_kit_dir, llm=llm, processor=processor)
    sent = engine.sync_weights(policy)
    assert sent == len(list(policy.named_parameters())) and llm.resets == 1
    assert llm.encoder_resets == 1 and engine.last_reset == ["prefix", "encoder"]
    for (name, a), (_, b) in zip(policy.named_parameters(), served.named_parameters()):
        assert torch.equal(a, b), name
    # an engine that exposes neither path fails with a clear message
    engine.llm = SimpleNamespace()
    sys.modules.setdefault("vllm", SimpleNamespace(__version__="absent"))  # message names the version
    try:
        with pytest.raises(RuntimeError, match="cannot reach the worker's model"):
            engine.sync_weights(policy)
    finally:
        if getattr(sys.modules.get("vllm"), "__version__", None) == "absent":
            del sys.modules["vllm"]


def test_engine_builds_one_request_per_sample_and_names_an_unreadable_video(tiny_kit_dir, kit_processor):
    from veripo.errors import VideoError
    from veripo.rollout.vllm_engine import VLLMEngine

    engine = VLLMEngine(tiny_kit_dir, VideoSampling(num_frames=4, max_pixels=56 * 56, min_pixels=None),
                        llm=SimpleNamespace(), processor=kit_processor)
    video_req, text_req = engine.vllm_inputs([video_sample(), text_sample()])
    assert video_req["prompt"].count("<|video_pad|>") == 1 and video_req["prompt"] == engine.prompt_text(video_sample())
    frames, meta = video_req["multi_modal_data"]["video"]
    assert frames.shape[0] == 4 and len(meta["frames_indices"]) == 4
    assert set(text_req) == {"prompt"} and "Options" not in text_req["prompt"]
    # the trainer's update forward sees the same prompt text through prompt_batch
    assert engine.prompt_batch([video_sample()]).texts == [video_req["prompt"]]
    broken = video_sample("bad")
    broken.path = str(write_videos_once()["corrupt"])
    with pytest.raises(VideoError, match="corrupt.mp4"):
        engine.vllm_inputs([text_sample(), broken])


def test_a_rows_own_video_options_reach_the_vllm_request_as_they_reach_the_update(tiny_kit_dir, kit_processor):
    """A row's qwen-vl-utils video options (``nframes`` here) set its frames for the update forward
    (``prompt_batch``); the vLLM request must carry the same frames, or the rollouts are sampled from other frames
    than the ones they are trained on (the request used the run's sampling for every row)."""
    from veripo.rollout.vllm_engine import VLLMEngine

    engine = VLLMEngine(tiny_kit_dir, VideoSampling(num_frames=8, max_pixels=56 * 56, min_pixels=None),
                        llm=SimpleNamespace(), processor=kit_processor)
    sample = video_sample()
    sample.video_options = {"nframes": 4}
    (req,) = engine.vllm_inputs([sample])
    frames, meta = req["multi_modal_data"]["video"]
    update = engine.prompt_batch([sample])
    assert frames.shape[0] == 4 == len(meta["frames_indices"])
    assert int(update.inputs["video_grid_thw"][0][0]) * 2 == frames.shape[0]  # temporal patch 2


def test_vllm_is_not_imported_and_a_missing_vllm_is_an_import_error(tiny_kit_dir):
    import importlib.util

    import veripo.rollout.vllm_engine as eng

    assert "vllm" not in sys.modules or importlib.util.find_spec("vllm") is not None
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ImportError, match="GPU-only extra"):
            eng.VLLMEngine(tiny_kit_dir)
    with pytest.raises(ValueError, match="needs model_path"):
        eng.VLLMEngine()


def test_grpo_config_with_a_server_url_is_refused_up_front():
    from veripo.config import load_config
    from veripo.grpo.config import GRPOConfig
    from veripo.grpo.trainer import engine_spec
    from veripo.rollout.vllm_engine import VLLMEngine

    cfg = load_config(GRPOConfig, None, ["rollout.engine=vllm", "rollout.vllm_server_url=http://127.0.0.1:9/v1"])
    with pytest.raises(VeripoError, match="cannot receive the policy's updated weights"):
        VLLMEngine.build(engine_spec(cfg), model=object(), processor=None)


# ------------------------------------------------------------------------------------------ server mode
def test_chat_request_puts_video_first_and_vllm_fields_in_extra_body(tmp_path):
    video = write_videos_once()["sq16"]
    msgs = chat_messages_for_server("Which way?", "video", video, inline=True)
    part = msgs[0]["content"][0]
    assert part["type"] == "video_url" and part["video_url"]["url"].startswith("data:video/mp4;base64,")
    assert base64.b64decode(part["video_url"]["url"].split(",", 1)[1]) == video.read_bytes()
    assert msgs[0]["content"][1] == {"type": "text", "text": "Which way?"}
    assert chat_messages_for_server("Q", "video", video)[0]["content"][0]["video_url"]["url"] == video.absolute().as_uri()
    body = chat_request("m", msgs, SamplingParams(temperature=1.0, top_k=5, max_new_tokens=32), n=4, seed=1,
                        processor_kwargs={"do_sample_frames": False})
    assert body["n"] == 4 and body["max_tokens"] == 32 and body["stop"] == ["</answer>"] and body["logprobs"] is True
    assert body["extra_body"] == {"return_tokens_as_token_ids": True, "skip_special_tokens": True,
                                  "include_stop_str_in_output": True, "top_k": 5,
                                  "mm_processor_kwargs": {"do_sample_frames": False}}


def test_completions_from_chat_without_token_ids_and_with_a_wrong_choice_count():
    reply = {"choices": [{"index": 1, "message": {"content": " b "}, "finish_reason": "stop",
                          "logprobs": {"content": [{"token": "b", "logprob": -0.3}]}},
                         {"index": 0, "message": {"content": "a"}, "finish_reason": None, "logprobs": None}]}
    a, b = completions_from_chat(reply, n=2)
    assert (a.text, a.finish_reason, a.token_ids) == ("a", "length", [])
    assert (b.text, b.token_ids, b.logps) == ("b", [], [])  # plain token strings: ids unknown, re-tokenised later
    with pytest.raises(ValueError, match="returned 2 choices, expected n=3"):
        completions_from_chat(reply, n=3)


def vllm_like_app(calls):
    """Answers like vLLM's OpenAI server: n choices with token_id:N log-prob entries; records each body."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        calls.append(body)
        choices = [{"index": i, "message": {"role": "assistant", "content": f"<answer>{i}</answer>"},
                    "finish_reason": "stop" if i else "length",
                    "logprobs": {"content": [{"token": f"token_id:{10 + i}", "logprob": -0.5, "top_logprobs": []},
                                             {"token": "token_id:7", "logprob": -1.5, "top_logprobs": []}]}}
                   for i in range(body["n"])]
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}

    return app


def test_server_mode_sends_video_url_over_the_wire_and_reads_token_ids(kit_processor):
    from veripo.rollout.vllm_engine import VLLMEngine
    from veripo.verifier.serving import BackgroundServer

    calls = []
    with BackgroundServer(vllm_like_app(calls)) as url:
        engine = VLLMEngine(server_url=url, server_model="served", processor=kit_processor, inline_video=True,
                            video_sampling=VideoSampling(fps=2.0))
        groups = engine.generate([video_sample("a"), text_sample("b")], n=3,
                                 params=SamplingParams(temperature=1.0, max_new_tokens=16))
    assert [len(g) for g in groups] == [3, 3]
    assert groups[0][1].token_ids == [11, 7] and groups[0][1].logps == [-0.5, -1.5]
    assert groups[0][0].finish_reason == "length" and groups[0][1].text == "<answer>1</answer>"
    by_video = {("video_url" in str(c["messages"])): c for c in calls}
    wire = by_video[True]
    assert wire["messages"][0]["content"][0]["type"] == "video_url"
    assert wire["include_stop_str_in_output"] is True and wire["return_tokens_as_token_ids"] is True  # extra_body merged
    assert wire["mm_processor_kwargs"] == {"do_sample_frames": False} and "mm_processor_kwargs" not in by_video[False]
    assert by_video[False]["messages"][0]["content"] == [{"type": "text", "text": by_video[False]["messages"][0]["content"][0]["text"]}]
    with pytest.raises(VeripoError, match="cannot receive policy weights"):
        engine.sync_weights(None)


def test_server_mode_against_serve_judge_on_the_tiny_model(tiny_kit_dir, kit_processor):
    """Text rows end to end through the real OpenAI client and the local HF server (it ignores video parts,
    so only text rows are meaningful here); token ids come from re-tokenising the returned text."""
    from veripo.rollout.vllm_engine import VLLMEngine
    from veripo.verifier.judge_server import create_judge_app
    from veripo.verifier.serving import BackgroundServer

    with BackgroundServer(create_judge_app(str(tiny_kit_dir), model_name="tiny")) as url:
        engine = VLLMEngine(server_url=url, processor=kit_processor)
        assert engine.server_model == "tiny"
        groups = engine.generate([text_sample("a"), text_sample("b")], n=2,
                                 params=SamplingParams(temperature=1.0, max_new_tokens=8))
    assert [len(g) for g in groups] == [2, 2]
    for c in (c for g in groups for c in g):
        assert c.finish_reason in ("stop", "length") and c.logps == []
        assert c.token_ids == kit_processor.tokenizer.encode(c.text, add_special_tokens=False)


def test_dead_server_is_a_clear_error(kit_processor):
    from veripo.rollout.vllm_engine import VLLMEngine
    from veripo.verifier.serving import free_port

    engine = VLLMEngine(server_url=f"http://127.0.0.1:{free_port()}", server_model="m", processor=kit_processor,
                        request_timeout=2.0)
    with pytest.raises(VeripoError, match="request for t1 failed"):
        engine.generate([text_sample()], n=1)


# ------------------------------------------------------------------------------------------ partial rollouts
class ScriptedLLM:
    """Stands in for a colocated vllm.LLM's ``generate``: records every request and answers each with ``n``
    outputs of ``max_tokens`` scripted token ids (call c, output j -> token 20 + 4 c + j), log-prob -0.5 each."""

    def __init__(self):
        self.calls = []

    def generate(self, requests, params, use_tqdm=False):
        call = len(self.calls)
        self.calls.append((requests, params))
        outs = []
        for _ in requests:
            outputs = []
            for j in range(params["n"]):
                ids = [20 + 4 * call + j] * params["max_tokens"]
                outputs.append(SimpleNamespace(text="x", token_ids=ids, finish_reason="length",
                                               logprobs=[{t: SimpleNamespace(logprob=-0.5)} for t in ids]))
            outs.append(SimpleNamespace(outputs=outputs))
        return outs


def test_continuation_request_is_the_prompt_as_token_ids_plus_the_prefix(clip, kit_processor):
    request = build_vllm_prompt("<|vision_start|><|video_pad|><|vision_end|>Which way?", [clip])
    assert continuation_request(request, [], kit_processor.tokenizer) is request
    cont = continuation_request(request, [40, 41, 42], kit_processor.tokenizer)
    ids = kit_processor.tokenizer.encode(request["prompt"], add_special_tokens=False)
    assert "prompt" not in cont and cont["prompt_token_ids"] == ids + [40, 41, 42]
    video_pad = kit_processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert cont["prompt_token_ids"].count(video_pad) == 1  # unexpanded: vLLM's processor expands it
    assert cont["multi_modal_data"] is request["multi_modal_data"]
    assert cont["mm_processor_kwargs"] == request["mm_processor_kwargs"]


def test_tree_rollouts_through_the_colocated_vllm_engine(tiny_kit_dir, kit_processor, monkeypatch):
    from veripo.rollout.partial import supports_partial  # capabilities().continues_partial
    from veripo.rollout.tree import TreeShape, grow_trees
    from veripo.rollout.vllm_engine import VLLMEngine

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(SamplingParams=lambda **kw: kw))
    llm = ScriptedLLM()
    engine = VLLMEngine(tiny_kit_dir, VideoSampling(num_frames=4, max_pixels=56 * 56, min_pixels=None), llm=llm,
                        processor=kit_processor)
    assert supports_partial(engine)
    trees = grow_trees(engine, [video_sample("a"), text_sample("b")], TreeShape((2, 2), 3),
                       SamplingParams(temperature=1.0, max_new_tokens=8))
    (first, p1), (second, p2) = llm.calls
    assert [r["prompt"] for r in first] == [engine.prompt_text(s) for s in (video_sample("a"), text_sample("b"))]
    assert (p1["n"], p1["max_tokens"], p2["n"], p2["max_tokens"]) == (2, 3, 2, 5)  # segment, then the rest
    assert len(second) == 4 and all("prompt_token_ids" in r for r in second)
    video_ids = kit_processor.tokenizer.encode(engine.prompt_text(video_sample("a")), add_special_tokens=False)
    assert second[0]["prompt_token_ids"] == video_ids + [20, 20, 20] and second[1]["prompt_token_ids"][-3:] == [21] * 3
    assert "multi_modal_data" in second[0] and "multi_modal_data" not in second[2]
    for leaves in trees:
        assert [c.tree["path"] for c in leaves] == [[1, 3], [1, 4], [2, 5], [2, 6]]
        assert [c.token_ids for c in leaves][:2] == [[20] * 3 + [24] * 5, [20] * 3 + [25] * 5]
        assert all(len(c.logps) == 8 and c.tree["cuts"] == [3, 8] for c in leaves)
    server = VLLMEngine(server_url="http://127.0.0.1:9", server_model="m", processor=kit_processor)
    assert not supports_partial(server)
    with pytest.raises(VeripoError, match="need the colocated engine"):
        server.continue_from([], [], [], 1, SamplingParams())


# ------------------------------------------------------------------------------------------ refusals (issue 18)
def test_greedy_sampling_with_several_samples_is_refused_before_any_video_is_decoded(tiny_kit_dir, kit_processor):
    """vLLM's SamplingParams rejects n > 1 at temperature 0; veripo says so in its own terms, up front."""
    from veripo.rollout.vllm_engine import VLLMEngine

    greedy = SamplingParams(temperature=0.0, max_new_tokens=4)
    with pytest.raises(VeripoError, match="vLLM refuses n > 1 for greedy"):
        sampling_params_dict(greedy, n=4)
    with pytest.raises(VeripoError, match="vLLM refuses n > 1 for greedy"):
        chat_request("m", [], greedy, n=2)
    assert sampling_params_dict(greedy, n=1)["temperature"] == 0.0
    engine = VLLMEngine(tiny_kit_dir, VideoSampling(num_frames=4), llm=SimpleNamespace(), processor=kit_processor)
    unreadable = video_sample("gone")
    unreadable.path = "/nonexistent/video.mp4"
    with pytest.raises(VeripoError, match="greedy"):  # not a VideoError: nothing was decoded
        engine.generate([unreadable], n=3, params=greedy)


def test_weight_sync_to_an_out_of_process_engine_core_is_refused(tiny_kit_dir, kit_processor):
    """Without an in-process worker, collective_rpc would pickle every weight tensor on every sync."""
    from veripo.models.load import load_policy
    from veripo.rollout.vllm_engine import VLLMEngine, engine_core_in_process

    class SyncMPClient:  # vLLM V1's client of an engine core in another process
        pass

    class InprocClient:
        pass

    calls = []
    llm = SimpleNamespace(llm_engine=SimpleNamespace(engine_core=SyncMPClient()),
                          collective_rpc=lambda fn, args=(): calls.append(len(args[0])))
    assert not engine_core_in_process(llm)
    engine = VLLMEngine(tiny_kit_dir, llm=llm, processor=kit_processor)
    policy, _ = load_policy(tiny_kit_dir)
    with pytest.raises(VeripoError, match="would pickle all .* weight tensors"):
        engine.sync_weights(policy)
    assert calls == []
    llm.llm_engine.engine_core = InprocClient()
    assert engine_core_in_process(llm)
    assert engine.sync_weights(policy) == calls[0] == len(list(policy.named_parameters()))
