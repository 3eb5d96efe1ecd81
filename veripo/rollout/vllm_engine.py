"""Rollout engine on vLLM (GPU extra): a colocated ``vllm.LLM`` or an OpenAI-compatible vLLM server.

Same interface as :class:`veripo.rollout.hf_engine.HFEngine`: ``generate(samples, n, temperature,
max_new_tokens, params=) -> list[list[Completion]]`` and ``prompt_batch(samples)`` (the processor batch the
trainer's update forward uses), plus ``sync_weights(model)``, which the GRPO trainer calls after each policy
update so the next rollouts come from the updated policy (on-policy GRPO, as in VerIPO / MM-EUREKA / TRL).

Nothing here imports vLLM at module import time; the import happens when a colocated engine is built, and a
missing vLLM raises ``ImportError`` (``veripo eval --engine auto`` then falls back to the HF engine).

Colocated mode. ``vllm.LLM`` shares the GPU with the trainer (``gpu_memory_utilization`` of it) and runs its
engine core in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so the worker's model is reachable for
weight sync. ``sync_weights`` pushes ``(name, tensor)`` pairs into vLLM's ``model.load_weights`` (which maps
Hugging Face names and fuses q/k/v and gate/up itself) and then resets the prefix cache, whose KV entries were
computed with the old weights, and the encoder cache, whose vision embeddings were (a trained vision tower
would otherwise keep serving stale embeddings for a video seen before). The model is found through, in order:

1. ``llm.llm_engine.model_executor.driver_worker.model_runner.model`` (vLLM V0; V1 with an in-process
   executor, whose worker wrapper forwards attributes; TRL 1.16 uses this path with vLLM 0.22-0.31);
2. ``...driver_worker.worker.model_runner.model`` (V1 worker wrapper without forwarding);
3. ``llm.collective_rpc(fn)`` with a function run on every worker (vLLM >= 0.8), only when the engine core
   runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, which veripo sets unless it was set already);
otherwise a ``RuntimeError`` names the vLLM version and what to set. An out-of-process engine core is refused:
``collective_rpc`` would pickle every weight tensor of the policy on every sync (about 16 GB per step for
Qwen2.5-VL-7B in bf16), and needs ``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` to pickle the function at all. A PEFT policy's
adapters are merged into its base weights for the transfer and unmerged after (``merge_adapter`` /
``unmerge_adapter``, as TRL does), so vLLM receives plain checkpoint-named weights.

A LoRA adapter folder as ``model_path``: vLLM loads the base model it names, which is right only when the
policy's weights are pushed right after (``build`` with a live model does: ``weights_synced=True``). Otherwise (e.g.
``veripo eval --engine vllm`` on an adapter folder) the engine would serve the base model, so it refuses.

Server mode (``server_url``): requests go to ``/v1/chat/completions`` with the video as a ``video_url`` part
(see :mod:`veripo.rollout.vllm_requests`). A server cannot receive the trainer's weights through the OpenAI
API, so ``sync_weights`` raises there; use it for evaluation or for sampling from a fixed policy.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

from veripo.errors import ConfigError, VeripoError
from veripo.prompt_batch import PromptBatch, build_prompt_batch, row_sampling
from veripo.rollout.engine import EngineCapabilities, EngineSpec
from veripo.generation.types import Completion, SamplingParams
from veripo.rollout.vllm_requests import (build_vllm_prompt, chat_messages_for_server, chat_request,
                                          check_greedy_n, completions_from_chat, completions_from_vllm, continuation_request,
                                          sampling_params_dict, vllm_weight_items)
from veripo.video.cache import FrameCache
from veripo.video.sampling import VideoSampling

log = logging.getLogger(__name__)

INSTALL_HINT = ("vLLM is not installed. It is a GPU-only extra: install it in a CUDA environment with the one "
                "pinned command in README.md, section 'Installing on a GPU machine' (vllm 0.31.0 with torch 2.13.0), "
                "or use rollout.engine=hf.")


def is_adapter_dir(path: str | Path) -> bool:
    """True for a PEFT adapter folder (``adapter_config.json`` inside)."""
    return (Path(path) / "adapter_config.json").exists()


def vllm_model_source(path: str | Path, weights_synced: bool = False) -> str:
    """What vLLM should load for a policy path: the path itself, or for an adapter folder the base model it
    names, which is allowed only when the caller pushes the policy's weights afterwards (``weights_synced``):
    vLLM would otherwise serve and score the base model, not the adapter."""
    if is_adapter_dir(path):
        import json

        adapter = Path(path) / "adapter_config.json"
        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if not weights_synced:
            raise VeripoError(
                f"{path}: a LoRA adapter folder; the vLLM engine would load its base model {base!r} and ignore the "
                "adapter. Use the HF engine (--engine hf / rollout.engine=hf), or save the policy merged "
                "(veripo.models.lora.save_policy(..., merge=True)) and point vLLM at that folder")
        if not base:
            raise VeripoError(f"{adapter}: no base_model_name_or_path, so vLLM cannot load the base model")
        return str(base)
    return str(path)


def find_inprocess_model(llm: Any) -> Any | None:
    """The ``torch.nn.Module`` inside a colocated ``vllm.LLM`` when its worker runs in this process."""
    executor = getattr(getattr(llm, "llm_engine", None), "model_executor", None)
    worker = getattr(executor, "driver_worker", None)
    for candidate in (worker, getattr(worker, "worker", None)):
        runner = getattr(candidate, "model_runner", None) if candidate is not None else None
        model = getattr(runner, "model", None) if runner is not None else None
        if model is not None and hasattr(model, "load_weights"):
            return model
    return None


def engine_core_in_process(llm: Any) -> bool:
    """Whether a ``vllm.LLM``'s engine core runs in this process (vLLM V1's ``InprocClient``; V0 always did).
    Unknown layouts count as in-process only when ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` is set."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None:
        return type(core).__name__ == "InprocClient"
    return os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"


def reset_caches(llm: Any) -> list[str]:
    """Drop what vLLM computed with the old weights: the prefix (KV) cache and the encoder (vision embedding)
    cache. Returns the names of the caches reset (a vLLM without one of the methods skips it)."""
    done = []
    if hasattr(llm, "reset_prefix_cache"):
        llm.reset_prefix_cache()
        done.append("prefix")
    engine = getattr(llm, "llm_engine", None)
    for owner in (llm, engine):
        if owner is not None and hasattr(owner, "reset_encoder_cache"):
            owner.reset_encoder_cache()
            done.append("encoder")
            break
    return done


def _load_on_worker(worker: Any, weights: list) -> int:
    """Run by ``collective_rpc`` on each vLLM worker: load ``weights`` into its model."""
    worker.model_runner.model.load_weights(weights=weights)
    return len(weights)


@contextmanager
def merged_adapters(model: Any):
    """Merge PEFT adapters into the base weights for the duration (no-op for a plain model)."""
    merge, unmerge = getattr(model, "merge_adapter", None), getattr(model, "unmerge_adapter", None)
    if merge is None or unmerge is None:
        yield model
        return
    merge()
    try:
        yield model
    finally:
        unmerge()


class VLLMEngine:
    """``generate(samples, n, ...) -> list[list[Completion]]`` on vLLM; see the module docstring."""

    name = "vllm"

    def __init__(self, model_path: str | Path | None = None, video_sampling: VideoSampling | None = None, *,
                 processor: Any = None, server_url: str | None = None, server_model: str | None = None,
                 api_key: str = "EMPTY", inline_video: bool = False, gpu_memory_utilization: float = 0.85,
                 dtype: str = "auto", seed: int = 0, max_model_len: int | None = None, enforce_eager: bool = False,
                 video_metadata: bool = True, batch_size: int = 8, reasoning: bool = True,
                 frame_cache: FrameCache | None = None, llm: Any = None, client: Any = None,
                 request_timeout: float = 600.0, max_workers: int = 8, weights_synced: bool = False,
                 **llm_kwargs: Any):
        if model_path is None and llm is None and server_url is None:
            raise ValueError("VLLMEngine needs model_path, an llm, or a server_url")
        if not video_metadata:
            raise VeripoError("VLLMEngine(video_metadata=False): vLLM 0.31's Qwen2.5-VL processor needs each video's "
                              "metadata ('Video metadata is required'), so bare frames are not supported; "
                              "videos are always sent as (frames, metadata)")
        self.model_path = str(model_path) if model_path is not None else None
        self.video_sampling = video_sampling
        self.frame_cache = frame_cache or FrameCache()
        self.batch_size = batch_size
        self.reasoning = reasoning
        self.inline_video = inline_video
        self.seed = seed
        self.last_timings: dict[str, float] = {}
        self.last_reset: list[str] = []  # caches reset by the last sync_weights
        self.server_url = server_url
        self.max_workers = max_workers
        self.llm = None
        self.client = None
        if server_url is not None:
            self.client = client or self._openai_client(server_url, api_key, request_timeout)
            self.server_model = server_model or self.model_path or self._first_served_model()
        else:
            self.llm = llm if llm is not None else self._build_llm(
                vllm_model_source(self.model_path, weights_synced), gpu_memory_utilization=gpu_memory_utilization, dtype=dtype,
                seed=seed, max_model_len=max_model_len, enforce_eager=enforce_eager, **llm_kwargs)
        self.processor = processor if processor is not None else self._load_processor()
        self.tokenizer = getattr(self.processor, "tokenizer", None)

    # --------------------------------------------------------------------------------- construction
    @classmethod
    def build(cls, spec: EngineSpec, model: Any = None, processor: Any = None) -> "VLLMEngine":
        """With a live ``model`` (the GRPO stage): colocated on the policy's GPU, weights synced from ``model`` at
        once (the policy may already differ from ``spec.model_path``: LoRA, a resumed checkpoint). Without one
        (evaluation): ``spec.model_path`` served by vLLM, or ``options.server_url``. ``spec.options``: the
        constructor's vLLM keywords (gpu_memory_utilization, max_model_len, server_url, ...)."""
        options = dict(spec.options)
        if model is not None and options.get("server_url"):
            raise ConfigError(
                f"rollout.vllm_server_url={options['server_url']!r}: an OpenAI-compatible server cannot receive the "
                "policy's updated weights, so GRPO rollouts would come from a stale policy. Use the colocated "
                "engine for training (unset rollout.vllm_server_url); the server mode is for evaluation.")
        engine = cls(spec.model_path, spec.video, processor=processor, dtype=spec.dtype, seed=spec.seed,
                     batch_size=spec.batch_size, weights_synced=model is not None, **options)
        if model is not None:
            engine.sync_weights(model)
        return engine

    @property
    def capabilities(self) -> EngineCapabilities:
        """Colocated: continues partial rollouts (token prompts) and receives the policy's weights; a server: neither.
        Mid-generation pruning stays opt-in here until a GPU run has checked it."""
        colocated = self.llm is not None
        return EngineCapabilities(continues_partial=colocated, receives_weights=colocated, sampling_params=True,
                                  prompt_modes=True)

    @staticmethod
    def _build_llm(source: str, **kwargs: Any) -> Any:
        # keep the engine core in this process (set before vLLM reads its environment): weight sync then
        # reaches the worker's model directly
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import vllm
        except ImportError as e:
            raise ImportError(f"{INSTALL_HINT} ({e})") from None
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs.setdefault("limit_mm_per_prompt", {"video": 1, "image": 1})
        kwargs.setdefault("enable_prefix_caching", True)
        try:  # log-probs under the sampling distribution (vLLM >= 0.10); older versions lack the option
            return vllm.LLM(model=source, logprobs_mode="processed_logprobs", **kwargs)
        except TypeError as e:
            if "logprobs_mode" not in str(e):
                raise
            log.warning("vLLM %s has no logprobs_mode: rollout log-probs are of the raw logits, not of the "
                        "temperature-scaled sampling distribution", getattr(vllm, "__version__", "?"))
            return vllm.LLM(model=source, **kwargs)

    @staticmethod
    def _openai_client(url: str, api_key: str, timeout: float) -> Any:
        from openai import OpenAI

        base = url.rstrip("/")
        return OpenAI(base_url=base if base.endswith("/v1") else base + "/v1", api_key=api_key, timeout=timeout,
                      max_retries=1)

    def _first_served_model(self) -> str:
        try:
            return self.client.models.list().data[0].id
        except Exception as e:  # noqa: BLE001 - any transport error is reported the same way
            raise VeripoError(f"vLLM server at {self.server_url}: cannot list its models ({e})") from None

    def _load_processor(self) -> Any:
        if self.model_path is None:
            raise ValueError("VLLMEngine needs a processor (or a model_path to load it from)")
        from veripo.models.load import load_processor

        return load_processor(self.model_path)

    # --------------------------------------------------------------------------------- prompts
    def prompt_batch(self, samples: Sequence[Any], frame_transform=None) -> PromptBatch:
        """The processor batch of ``samples`` (for the training forward), exactly as the HF engine builds it."""
        return build_prompt_batch(self.processor, samples, self.frame_cache, self.video_sampling,
                                  reasoning=self.reasoning, frame_transform=frame_transform)

    def prompt_text(self, sample: Any) -> str:
        from veripo.prompts import chat_messages
        from veripo.video.inputs import render_prompt

        return render_prompt(self.processor, chat_messages(sample, reasoning=self.reasoning))

    def vllm_inputs(self, samples: Sequence[Any], frame_transform=None) -> list[dict[str, Any]]:
        """One ``LLM.generate`` input per sample; raises ``VideoError`` naming an unreadable video."""
        from PIL import Image

        from veripo.video.inputs import video_processor_kwargs

        processor_kwargs = video_processor_kwargs(self.processor)
        decoded = iter(self.frame_cache.get_many([(s.path, row_sampling(s, self.video_sampling, self.frame_cache))
                                                  for s in samples if s.data_type == "video"]))  # side by side
        out = []
        for sample in samples:
            dtype, path = sample.data_type, sample.path
            clips, images = [], []
            if dtype == "video":
                clip = next(decoded)
                clips.append(frame_transform(clip, sample) if frame_transform is not None else clip)
            elif dtype == "image":
                images.append(Image.open(path).convert("RGB"))
            out.append(build_vllm_prompt(self.prompt_text(sample), clips, images, processor_kwargs=processor_kwargs,
                                         video_token=getattr(self.processor, "video_token", "<|video_pad|>"),
                                         image_token=getattr(self.processor, "image_token", "<|image_pad|>")))
        return out

    # --------------------------------------------------------------------------------- generate
    def generate(self, samples: Sequence[Any], n: int = 1, temperature: float = 0.0, max_new_tokens: int = 256,
                 params: SamplingParams | None = None, frame_transform=None) -> list[list[Completion]]:
        params = params or SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens)
        check_greedy_n(params, n)  # before decoding any video
        if self.client is not None:
            return self._generate_server(samples, n, params)
        import vllm

        t0 = time.perf_counter()
        inputs = self.vllm_inputs(samples, frame_transform)
        t1 = time.perf_counter()
        outputs = self.llm.generate(inputs, vllm.SamplingParams(**sampling_params_dict(params, n)), use_tqdm=False)
        groups = completions_from_vllm(outputs, n)
        self.last_timings = {"prepare_s": t1 - t0, "generate_s": time.perf_counter() - t1}
        return groups

    # --------------------------------------------------------------------------------- partial rollouts
    def partial_batch(self, samples: Sequence[Any]) -> list[dict[str, Any]]:
        """What ``continue_from`` takes as ``batch``: one request per sample."""
        return self.vllm_inputs(samples)

    def continue_from(self, batch: Sequence[dict[str, Any]], prompt_index: Sequence[int],
                      prefixes: Sequence[Sequence[int]], n: int, params: SamplingParams,
                      capture_hidden: bool = False) -> list[list[Completion]]:
        """``n`` continuations of each partial rollout (``batch[prompt_index[r]]`` + ``prefixes[r]``); only the new
        tokens are returned, as by the HF engine (veripo/rollout/partial.py)."""
        if capture_hidden:
            raise VeripoError("the vLLM engine does not expose hidden states (ARRoL's learned head needs the hf engine)")
        if self.llm is None:
            raise VeripoError(f"vLLM server {self.server_url}: partial rollouts (tree rollouts, mid-generation "
                              "pruning) need the colocated engine")
        import vllm

        t0 = time.perf_counter()
        requests = [continuation_request(batch[i], prefix, self.tokenizer) for i, prefix in zip(prompt_index, prefixes)]
        outputs = self.llm.generate(requests, vllm.SamplingParams(**sampling_params_dict(params, n)), use_tqdm=False)
        self.last_timings = {"prepare_s": 0.0, "generate_s": time.perf_counter() - t0}
        return completions_from_vllm(outputs, n)

    def _generate_server(self, samples: Sequence[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        from veripo.prompts import question_text

        def one(sample: Any) -> list[Completion]:
            dtype = sample.data_type
            messages = chat_messages_for_server(question_text(sample, self.reasoning), dtype, sample.path,
                                                inline=self.inline_video)
            # the server decodes and samples the video itself (--media-io-kwargs); its processor must not
            # sample those frames again
            kwargs = chat_request(self.server_model, messages, params, n=n,
                                  processor_kwargs={"do_sample_frames": False} if dtype == "video" else None)
            try:
                response = self.client.chat.completions.create(**kwargs)
            except Exception as e:  # noqa: BLE001 - transport and HTTP errors alike
                raise VeripoError(f"vLLM server {self.server_url}: request for {sample.problem_id} "
                                  f"failed: {e}") from None
            comps = completions_from_chat(response, n)
            for c in comps:
                if not c.token_ids and self.tokenizer is not None:  # server did not return token ids
                    c.token_ids = self.tokenizer.encode(c.text, add_special_tokens=False)
            return comps

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_workers, len(samples)))) as pool:
            groups = list(pool.map(one, samples))
        self.last_timings = {"prepare_s": 0.0, "generate_s": time.perf_counter() - t0}
        return groups

    # --------------------------------------------------------------------------------- weights
    def sync_weights(self, model: Any) -> int:
        """Push ``model``'s current weights into the colocated vLLM worker; returns how many tensors were sent."""
        if self.llm is None:
            raise VeripoError("sync_weights: a vLLM server cannot receive policy weights through the OpenAI API; "
                              "use the colocated engine (no server_url) for training")
        import torch

        t0 = time.perf_counter()
        with torch.no_grad(), merged_adapters(model):
            weights = list(vllm_weight_items((n, p.data) for n, p in model.named_parameters()))
            target = find_inprocess_model(self.llm)
            if target is not None:
                target.load_weights(weights)
            elif hasattr(self.llm, "collective_rpc"):
                if not engine_core_in_process(self.llm):
                    raise VeripoError(
                        "sync_weights: the vLLM engine core runs in another process, so every sync would pickle all "
                        f"{len(weights)} weight tensors to it. Set VLLM_ENABLE_V1_MULTIPROCESSING=0 before the engine "
                        "is built (veripo sets it unless it is already set in the environment)")
                self.llm.collective_rpc(_load_on_worker, args=(weights,))
            else:
                import vllm

                raise RuntimeError(
                    f"vLLM {getattr(vllm, '__version__', '?')}: cannot reach the worker's model to load weights "
                    "(no llm_engine.model_executor.driver_worker.model_runner.model and no LLM.collective_rpc). "
                    "Set VLLM_ENABLE_V1_MULTIPROCESSING=0 before building the engine, or use vLLM 0.30/0.31.")
        self.last_reset = reset_caches(self.llm)  # cached KV blocks and vision embeddings used the old weights
        self.last_timings["sync_s"] = time.perf_counter() - t0
        return len(weights)
