"""What the vLLM engine sends and receives, as pure functions (no vLLM import: unit-tested on CPU).

Colocated engine (``vllm.LLM.generate``), one request per prompt::

    {"prompt": <chat-templated text with <|vision_start|><|video_pad|><|vision_end|>>,
     "multi_modal_data": {"video": (frames uint8 [T, H, W, 3], metadata dict)},
     "mm_processor_kwargs": {"do_sample_frames": False, ["cap_pixels_per_frame": False]}}

The frames are the clip our decoder already sampled and resized (the same pixels the HF engine and the
training forward see), and ``mm_processor_kwargs`` are the processor settings of the HF path
(``veripo.video.inputs.video_processor_kwargs``): the processor must not sample frames again
(``do_sample_frames=False``; with ``True`` it would re-sample the 8 decoded frames as if they were the whole
video and fail with "index 8 is out of bounds", or silently drop frames) and must not shrink the frames
under a total-video pixel budget (``cap_pixels_per_frame=False`` where transformers has the option, the
default from 5.22 being ``True``). Rollout and training then see the same frames and the same token counts.

Qwen2.5-VL's temporal mRoPE needs ``second_per_grid_ts = temporal_patch_size / sampled_fps`` (0.5 s for 8 of
16 frames of an 8 fps clip). transformers >= 5 computes it from the metadata in the ``(frames, metadata)``
tuple (transformers' ``VideoMetadata`` fields: ``total_num_frames``, ``fps`` = native rate,
``frames_indices``, ...; ``sampled_fps = len(frames_indices) / total_num_frames * fps``, cpu-stack.md
pitfall 2), so no ``fps`` processor kwarg is sent: it only steers frame sampling, which is off. The metadata
is required: vLLM 0.31's Qwen2.5-VL processor rejects bare frame arrays ("Video metadata is required"), so
there is no bare-frames mode.

Sampling parameters are a plain dict for ``vllm.SamplingParams(**d)``: ``logprobs=0`` returns the sampled
token's log-prob only; with ``LLM(logprobs_mode="processed_logprobs")`` that is the log-prob under the
sampling distribution (after temperature / top-k / top-p), as our HF engine reports it. vLLM refuses greedy
sampling with ``n > 1``; ``sampling_params_dict`` says so first.

Server mode (an OpenAI-compatible ``vllm serve``): one chat request per prompt, the video as a ``video_url``
content part (``file://`` URL, which needs ``--allowed-local-media-path``, or a base64 ``data:`` URL); vLLM-only
fields go in ``extra_body`` (``top_k``, ``include_stop_str_in_output``, ``return_tokens_as_token_ids``,
``mm_processor_kwargs``). The server decodes the video itself, so its frame count follows the server's
``--media-io-kwargs`` (e.g. ``'{"video": {"num_frames": 16}}'``), not our ``VideoSampling``; the request
still sends ``do_sample_frames=False`` so the server's processor does not sample those frames a second time.
"""
from __future__ import annotations

import base64
import math
import mimetypes
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from veripo.errors import VeripoError
from veripo.generation.types import Completion, SamplingParams

ANSWER_STOP = "</answer>"


# ------------------------------------------------------------------------------------------------ prompts
def video_metadata_dict(clip: Any) -> dict[str, Any]:
    """transformers ``VideoMetadata`` fields of a decoded clip (``veripo.video.decode.VideoClip``)."""
    return {
        "total_num_frames": int(clip.total_frames), "fps": float(clip.native_fps), "duration": float(clip.duration),
        "frames_indices": [int(i) for i in clip.indices], "video_backend": clip.backend or "decord",
        "width": int(clip.frames.shape[2]), "height": int(clip.frames.shape[1]),
    }


def video_item(clip: Any) -> tuple[Any, dict[str, Any]]:
    """The ``multi_modal_data["video"]`` entry for one clip: ``(frames, metadata)`` (vLLM 0.31's Qwen2.5-VL
    processor requires the metadata)."""
    return clip.frames, video_metadata_dict(clip)


def build_vllm_prompt(text: str, clips: Sequence[Any] = (), images: Sequence[Any] = (),
                      processor_kwargs: dict[str, Any] | None = None, video_token: str = "<|video_pad|>",
                      image_token: str = "<|image_pad|>") -> dict[str, Any]:
    """One ``vllm.LLM.generate`` input for a rendered prompt and its decoded clips / PIL images.

    ``processor_kwargs``: the video processor settings sent as ``mm_processor_kwargs`` with any clip (the
    engine passes ``veripo.video.inputs.video_processor_kwargs(processor)``, what the HF path passes; the
    default is ``{"do_sample_frames": False}``). The number of video / image placeholders in ``text`` must equal
    the clips / images given (checked here, so a mismatch names the prompt instead of failing deep inside
    vLLM's processor).
    """
    if text.count(video_token) != len(clips) or text.count(image_token) != len(images):
        raise ValueError(f"prompt has {text.count(video_token)} video and {text.count(image_token)} image "
                         f"placeholder(s) but {len(clips)} video(s) and {len(images)} image(s) were given: {text[:120]!r}")
    request: dict[str, Any] = {"prompt": text}
    mm: dict[str, Any] = {}
    if clips:
        items = [video_item(c) for c in clips]
        mm["video"] = items[0] if len(items) == 1 else items
        request["mm_processor_kwargs"] = dict(processor_kwargs if processor_kwargs is not None
                                              else {"do_sample_frames": False})
    if images:
        mm["image"] = images[0] if len(images) == 1 else list(images)
    if mm:
        request["multi_modal_data"] = mm
    return request


def continuation_request(request: dict[str, Any], prefix: Sequence[int], tokenizer: Any) -> dict[str, Any]:
    """The request that continues a partial rollout: the same prompt as token ids (the chat-templated text
    tokenised, one unexpanded ``<|video_pad|>`` that vLLM's processor expands as it does for text) followed by the
    ``prefix`` tokens already sampled, with the same ``multi_modal_data`` / ``mm_processor_kwargs`` (so vLLM's
    prefix cache, keyed by tokens and media hashes, serves the shared part). An empty prefix keeps the text
    request unchanged."""
    if not prefix:
        return request
    out = {k: v for k, v in request.items() if k != "prompt"}
    prompt_ids = tokenizer.encode(request["prompt"], add_special_tokens=False)
    out["prompt_token_ids"] = list(prompt_ids) + [int(t) for t in prefix]
    return out


# ------------------------------------------------------------------------------------------------ sampling
def check_greedy_n(params: SamplingParams, n: int) -> None:
    """vLLM's ``SamplingParams`` rejects ``n > 1`` at temperature 0; say it in veripo's terms first."""
    if params.temperature <= 0 and n > 1:
        raise VeripoError(f"temperature={params.temperature} (greedy) with n={n}: vLLM refuses n > 1 for greedy "
                          "sampling (the samples would be identical); use n=1 or a temperature > 0")


def sampling_params_dict(params: SamplingParams, n: int = 1, seed: int | None = None,
                         logprobs: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams``: G samples per prompt, stop after ``</answer>`` (kept in
    the text, as our HF engine keeps it), EOS handled by vLLM, sampled-token log-probs (``logprobs=0``).
    Temperature 0 is greedy; ``top_k=0`` means off in both (TRL 1.16 passes 0 to vLLM 0.22-0.31 the same way)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    check_greedy_n(params, n)
    d: dict[str, Any] = {
        "n": int(n), "temperature": max(0.0, float(params.temperature)), "top_p": float(params.top_p),
        "top_k": max(0, int(params.top_k or 0)),
        "max_tokens": int(params.max_new_tokens), "skip_special_tokens": True,
    }
    if params.stop_at_answer:
        d.update(stop=[ANSWER_STOP], include_stop_str_in_output=True)
    if params.repetition_penalty != 1.0:
        d["repetition_penalty"] = float(params.repetition_penalty)
    if logprobs:
        d["logprobs"] = 0
    if seed is not None:
        d["seed"] = int(seed)
    return d


# ------------------------------------------------------------------------------------------------ outputs
def _token_logprob(entry: Any, token_id: int) -> float:
    """The sampled token's log-prob from one position of vLLM's ``logprobs`` (dict token_id -> Logprob)."""
    if entry is None:
        return float("nan")
    item = entry.get(token_id) if isinstance(entry, dict) else None
    if item is None:
        raise ValueError(f"vLLM returned no log-prob for the sampled token {token_id}")
    value = float(getattr(item, "logprob", item))
    return value


def completion_from_vllm(output: Any) -> Completion:
    """Our ``Completion`` from one ``vllm.CompletionOutput`` (``.text``, ``.token_ids``, ``.logprobs``,
    ``.finish_reason``). Without log-probs (requested with ``logprobs=None``) ``logps`` is empty; a NaN
    log-prob (vLLM's placeholder) raises, because the policy loss would silently turn NaN."""
    token_ids = [int(t) for t in (output.token_ids or [])]
    logps: list[float] = []
    if output.logprobs is not None:
        if len(output.logprobs) != len(token_ids):
            raise ValueError(f"vLLM returned {len(output.logprobs)} log-probs for {len(token_ids)} tokens")
        logps = [_token_logprob(entry, tid) for entry, tid in zip(output.logprobs, token_ids)]
        if any(math.isnan(x) for x in logps):
            raise ValueError("vLLM returned a NaN log-prob for a sampled token")
    finish = output.finish_reason or "length"
    return Completion(text=(output.text or "").strip(), token_ids=token_ids, logps=logps,
                      finish_reason="stop" if finish == "stop" else "length" if finish == "length" else str(finish))


def completions_from_vllm(request_outputs: Sequence[Any], n: int) -> list[list[Completion]]:
    """One list of ``n`` completions per ``vllm.RequestOutput`` (in request order)."""
    groups = []
    for i, ro in enumerate(request_outputs):
        outs = list(ro.outputs)
        if len(outs) != n:
            raise ValueError(f"request {i}: vLLM returned {len(outs)} completions, expected n={n}")
        groups.append([completion_from_vllm(o) for o in outs])
    return groups


# ------------------------------------------------------------------------------------------------ weights
_PEFT_PREFIX = "base_model.model."
_ADAPTER_PARAM = re.compile(r"\.lora_(A|B|embedding_A|embedding_B|magnitude_vector)\.")


def vllm_weight_name(name: str) -> str | None:
    """The checkpoint name vLLM's ``load_weights`` expects for one policy parameter, or None to skip it.

    Plain Hugging Face names pass through (vLLM's Qwen2.5-VL maps ``model.language_model.*`` / ``model.visual.*``
    / ``lm_head.*`` itself). For a PEFT model whose adapters were merged into the base weights first, the
    wrapper prefix and ``.base_layer`` go and the adapter matrices are skipped.
    """
    if _ADAPTER_PARAM.search(name) or ".original_module." in name:
        return None
    if name.startswith(_PEFT_PREFIX):
        name = name[len(_PEFT_PREFIX):]
    for wrapper in (".base_layer.", ".modules_to_save.default."):
        name = name.replace(wrapper, ".")
    return name.replace("_checkpoint_wrapped_module.", "")


def vllm_weight_items(named_parameters: Iterable[tuple[str, Any]]) -> Iterable[tuple[str, Any]]:
    """``(vllm name, tensor)`` for every parameter that vLLM should receive (see ``vllm_weight_name``)."""
    for name, tensor in named_parameters:
        mapped = vllm_weight_name(name)
        if mapped is not None:
            yield mapped, tensor


# ------------------------------------------------------------------------------------------------ server
def video_url(path: str | Path, inline: bool = False) -> str:
    """``file://`` URL of a video (the server must allow the folder) or, ``inline=True``, a base64 data URL."""
    path = Path(path).absolute()
    if not inline:
        return path.as_uri()
    mime = mimetypes.guess_type(path.name)[0] or "video/mp4"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def chat_messages_for_server(question: str, data_type: str = "text", path: str | Path | None = None,
                             inline: bool = False) -> list[dict[str, Any]]:
    """OpenAI chat messages for one sample: the video (or image) part first, then the question text."""
    content: list[dict[str, Any]] = []
    if data_type == "video":
        content.append({"type": "video_url", "video_url": {"url": video_url(path, inline)}})
    elif data_type == "image":
        content.append({"type": "image_url", "image_url": {"url": video_url(path, inline).replace("video/", "image/")}})
    content.append({"type": "text", "text": question})
    return [{"role": "user", "content": content}]


def chat_request(model: str, messages: list[dict[str, Any]], params: SamplingParams, n: int = 1,
                 seed: int | None = None, processor_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``openai.OpenAI().chat.completions.create``: standard fields at top level,
    vLLM's sampling extensions in ``extra_body`` (the JSON body on the wire is the two merged);
    ``processor_kwargs`` (for a video row: ``{"do_sample_frames": False}``) go as ``mm_processor_kwargs``."""
    check_greedy_n(params, n)
    body: dict[str, Any] = {
        "model": model, "messages": messages, "n": int(n), "temperature": max(0.0, float(params.temperature)),
        "top_p": float(params.top_p), "max_tokens": int(params.max_new_tokens), "logprobs": True, "top_logprobs": 0,
    }
    if params.stop_at_answer:
        body["stop"] = [ANSWER_STOP]
    if seed is not None:
        body["seed"] = int(seed)
    extra: dict[str, Any] = {"return_tokens_as_token_ids": True, "skip_special_tokens": True}
    if params.stop_at_answer:
        extra["include_stop_str_in_output"] = True
    if params.top_k and params.top_k > 0:
        extra["top_k"] = int(params.top_k)
    if params.repetition_penalty != 1.0:
        extra["repetition_penalty"] = float(params.repetition_penalty)
    if processor_kwargs:
        extra["mm_processor_kwargs"] = dict(processor_kwargs)
    body["extra_body"] = extra
    return body


def _token_id_of(token: str) -> int | None:
    """vLLM writes tokens as ``token_id:123`` when ``return_tokens_as_token_ids`` is on."""
    if isinstance(token, str) and token.startswith("token_id:"):
        try:
            return int(token.split(":", 1)[1])
        except ValueError:
            return None
    return None


def completions_from_chat(response: Any, n: int) -> list[Completion]:
    """Our completions from an OpenAI chat response (object or its dict). Token ids come from the log-prob
    entries when the server wrote them as ``token_id:N``; otherwise ``token_ids`` is empty (the engine then
    re-tokenises the text)."""
    data = response.model_dump() if hasattr(response, "model_dump") else response
    choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
    if len(choices) != n:
        raise ValueError(f"the server returned {len(choices)} choices, expected n={n}")
    out = []
    for ch in choices:
        text = ((ch.get("message") or {}).get("content")) or ""
        entries = ((ch.get("logprobs") or {}).get("content")) or []
        ids = [_token_id_of(e.get("token")) for e in entries]
        token_ids = [i for i in ids if i is not None] if entries and all(i is not None for i in ids) else []
        logps = [float(e["logprob"]) for e in entries] if token_ids else []
        finish = ch.get("finish_reason") or "length"
        out.append(Completion(text=text.strip(), token_ids=token_ids, logps=logps,
                              finish_reason="stop" if finish == "stop" else "length" if finish == "length" else finish))
    return out
