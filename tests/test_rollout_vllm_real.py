"""veripo's vLLM engine against the real vLLM package (marker ``vllm``; skipped where vLLM is not importable,
so not part of the default CPU run). Checked with vLLM 0.31.0 on CPU (VLLM_TARGET_DEVICE=cpu), no engine
started: what ``LLM.generate`` does with a request before and after the GPU, on the tiny kit.

* veripo's requests through vLLM's own renderer (``renderer.render_cmpl``, the path ``LLM.generate`` takes:
  parsing of ``multi_modal_data``, the Qwen2.5-VL processor with the request's ``mm_processor_kwargs``, the
  placeholder expansion): prompt ids equal the HF processor's ``input_ids`` (also for a continuation request
  given as token ids), and the video grid, ``second_per_grid_ts`` and pixels agree with the HF path's;
* bare frames fail in vLLM's parser ("Video metadata is required"), which is why veripo refuses the mode;
* vLLM's output processor (``OutputProcessor.process_outputs`` on engine-core outputs with sampled-token
  log-probs, stop-string detection and detokenisation) gives ``RequestOutput`` objects that veripo's parser
  turns into the tokens and log-probs fed in;
* veripo's weight names load into vLLM's own ``Qwen2_5_VLForConditionalGeneration`` built on CPU, every vLLM
  parameter is written, and fused q/k/v equals the policy's q, k, v.

Run where vLLM is installed (a GPU environment, or a scratch CPU venv made as README describes, less the
CUDA-only torchaudio/torchcodec): ``python -m pytest -q -m vllm tests/test_rollout_vllm_real.py``.
"""
import importlib.util
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kit_fixtures import tiny_kit_dir  # noqa: F401  (session fixtures)
from test_rollout_vllm_requests import text_sample, video_sample  # noqa: F401  (the same two rows)
from veripo.generation.types import SamplingParams
from veripo.rollout.vllm_requests import completions_from_vllm, continuation_request, sampling_params_dict
from veripo.video.sampling import VideoSampling

pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")]

SAMPLING = VideoSampling(num_frames=8, max_pixels=56 * 56, min_pixels=None)




@pytest.fixture(scope="module")
def vllm_config(tiny_kit_dir, tmp_path_factory):
    """vLLM's config for the tiny kit. vLLM inspects the model class in a subprocess, which must get veripo's
    torchvision shim too on a CPU-only machine (PyPI's torchvision is CUDA-linked): a sitecustomize does it."""
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text("import veripo  # torchvision shim for vLLM's subprocesses\n")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(site) + (os.pathsep + old if old else "")
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.config import ModelConfig, VllmConfig

    try:
        model_config = ModelConfig(model=str(tiny_kit_dir), tokenizer=str(tiny_kit_dir), dtype="float32",
                                   max_model_len=2048, limit_mm_per_prompt={"video": 1, "image": 1})
        yield VllmConfig(model_config=model_config)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def renderer(vllm_config):
    from vllm.renderers.registry import renderer_from_config

    return renderer_from_config(vllm_config)


@pytest.fixture(scope="module")
def engine(tiny_kit_dir):
    from veripo.models.load import load_processor
    from veripo.rollout.vllm_engine import VLLMEngine

    return VLLMEngine(tiny_kit_dir, SAMPLING, llm=SimpleNamespace(), processor=load_processor(tiny_kit_dir))


def mm_field(engine_input, name):
    (item,) = engine_input["mm_kwargs"]["video"]
    return item.get_data()[name]


def test_requests_through_vllms_renderer_match_the_hf_processor(engine, renderer):
    from veripo.video.inputs import build_model_inputs

    video_req, text_req = engine.vllm_inputs([video_sample(), text_sample()])
    v_in, t_in = renderer.render_cmpl([video_req, text_req])
    clip = engine.frame_cache.get(video_sample().path, SAMPLING)
    hf = build_model_inputs(engine.processor, [video_req["prompt"]], [clip])
    assert v_in["prompt_token_ids"] == hf["input_ids"][0].tolist()
    video_pad = engine.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert v_in["prompt_token_ids"].count(video_pad) == int(hf["video_grid_thw"].prod()) // 4  # 8 frames -> 16
    assert torch.equal(torch.as_tensor(mm_field(v_in, "video_grid_thw")).view(-1), hf["video_grid_thw"][0])
    assert float(torch.as_tensor(mm_field(v_in, "second_per_grid_ts")).view(-1)[0]) == pytest.approx(
        float(hf["second_per_grid_ts"][0])) == pytest.approx(0.5)  # 8 of 16 frames at 8 fps
    # vLLM 0.31 sends uint8 patches and rescales / normalises on the device (mm_device_do_normalize): do it here
    raw = torch.as_tensor(mm_field(v_in, "pixel_values_videos")).float() / 255.0
    vp = engine.processor.video_processor
    per_channel = raw.shape[1] // 3  # patches flatten as (channel, time, row, column)
    mean = torch.tensor(vp.image_mean).repeat_interleave(per_channel)
    std = torch.tensor(vp.image_std).repeat_interleave(per_channel)
    assert raw.shape == hf["pixel_values_videos"].shape
    assert torch.allclose((raw - mean) / std, hf["pixel_values_videos"].float(), atol=1e-4)
    hf_text = build_model_inputs(engine.processor, [text_req["prompt"]])
    assert t_in["prompt_token_ids"] == hf_text["input_ids"][0].tolist()
    # a partial rollout continued: token ids with one unexpanded <|video_pad|>, expanded by vLLM as for text
    cont = continuation_request(video_req, [40, 41, 42], engine.tokenizer)
    (c_in,) = renderer.render_cmpl([cont])
    assert c_in["prompt_token_ids"] == hf["input_ids"][0].tolist() + [40, 41, 42]


def test_bare_frames_fail_in_vllms_parser(engine, renderer):
    (video_req,) = engine.vllm_inputs([video_sample()])
    bare = dict(video_req, multi_modal_data={"video": video_req["multi_modal_data"]["video"][0]})
    with pytest.raises(Exception, match="Video metadata is required"):
        renderer.render_cmpl([bare])


def test_vllms_output_processor_results_parse_into_completions(vllm_config, renderer, engine):
    import vllm
    from vllm.v1.engine import EngineCoreOutput
    from vllm.v1.engine.input_processor import InputProcessor
    from vllm.v1.engine.output_processor import OutputProcessor
    from vllm.v1.outputs import LogprobsLists

    (text_req,) = engine.vllm_inputs([text_sample()])
    params = vllm.SamplingParams(**sampling_params_dict(SamplingParams(temperature=1.0, max_new_tokens=32), n=1))
    (rendered,) = renderer.render_cmpl([text_req])
    request = InputProcessor(vllm_config, renderer).process_inputs("r0", rendered, params,
                                                                   supported_tasks=("generate",))
    InputProcessor.assign_request_id(request)  # as LLMEngine.add_request does
    processor = OutputProcessor(renderer.get_tokenizer(), log_stats=False)
    processor.add_request(request, text_req["prompt"])
    answer = engine.tokenizer.encode("<think>add</think><answer>5</answer>", add_special_tokens=False)
    tail = engine.tokenizer.encode(" more words", add_special_tokens=False)  # never reached: the stop string ends it
    ids = answer + tail
    logps = np.array([[-0.25 - 0.01 * i] for i in range(len(ids))], dtype=np.float32)
    outputs, steps = None, 0
    for i, token in enumerate(ids):  # one token per engine step, as the engine core sends them
        steps += 1
        result = processor.process_outputs([EngineCoreOutput(
            request_id=request.request_id, new_token_ids=[token],
            new_logprobs=LogprobsLists(np.array([[token]]), logps[i:i + 1], np.ones(1, dtype=np.int64)))])
        outputs = result.request_outputs or outputs
        if outputs and outputs[0].finished:
            break
    assert steps == len(answer)  # the output processor found "</answer>" and finished the request
    (group,) = completions_from_vllm(outputs, n=1)
    (c,) = group
    assert c.finish_reason == "stop" and c.text.endswith("<answer>5</answer>")
    assert c.token_ids == answer and c.logps == pytest.approx(logps[: len(answer), 0].tolist())


def test_policy_weights_load_into_vllms_qwen2_5_vl_model(vllm_config, tiny_kit_dir):
    from vllm.config import set_current_vllm_config
    from vllm.distributed import init_distributed_environment, initialize_model_parallel
    from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration

    from veripo.models.load import load_policy
    from veripo.rollout.vllm_requests import vllm_weight_items
    from veripo.verifier.serving import free_port

    with set_current_vllm_config(vllm_config):
        init_distributed_environment(world_size=1, rank=0, local_rank=0, backend="gloo",
                                     distributed_init_method=f"tcp://127.0.0.1:{free_port()}")
        initialize_model_parallel(1, 1)
        served = Qwen2_5_VLForConditionalGeneration(vllm_config=vllm_config, prefix="")
    policy, _ = load_policy(tiny_kit_dir)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the checkpoint's values
    loaded = served.load_weights(vllm_weight_items((n, p.data) for n, p in policy.named_parameters()))
    params = dict(served.named_parameters())
    assert set(params) <= set(loaded), sorted(set(params) - set(loaded))[:5]
    ours = dict(policy.named_parameters())
    q, k, v = (ours[f"model.language_model.layers.0.self_attn.{x}_proj.weight"] for x in "qkv")
    qkv = next(p for n, p in params.items() if n.endswith("layers.0.self_attn.qkv_proj.weight"))
    assert torch.equal(qkv.data.float(), torch.cat([q, k, v]).float())


def test_the_apis_veripo_relies_on_exist_in_this_vllm():
    """Greedy with n > 1 is vLLM's refusal too (veripo says it first); the encoder cache is reset through
    ``LLM.llm_engine`` (vLLM 0.31 has ``reset_encoder_cache`` on ``LLMEngine``, not on ``LLM``); an in-process
    engine core is vLLM's ``InprocClient``."""
    import vllm
    from vllm.v1.engine import core_client
    from vllm.v1.engine.llm_engine import LLMEngine

    with pytest.raises(Exception, match="n must be 1 when using greedy sampling"):
        vllm.SamplingParams(n=2, temperature=0.0)
    assert vllm.SamplingParams(**sampling_params_dict(SamplingParams(temperature=0.0), n=1)).n == 1
    assert hasattr(LLMEngine, "reset_encoder_cache") and hasattr(vllm.LLM, "reset_prefix_cache")
    assert hasattr(vllm.LLM, "collective_rpc") and hasattr(core_client, "InprocClient")
