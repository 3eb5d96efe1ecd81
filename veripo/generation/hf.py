"""Sampling with Hugging Face ``generate``, shared by the HF rollout engine (GRPO, eval) and SFT's greedy held-out
check: batched and left-padded, KV cache on, ``n`` samples per prompt through ``num_return_sequences``, stop on EOS
or right after ``</answer>`` (a stop id when it is one token, else the string criterion ``StopAfterText``: in
Qwen's tokenizer it is three pieces), vision placeholder tokens suppressed (a sampled ``<|video_pad|>`` would break
the next forward). Per-token log-probs of the sampled tokens under the *sampling* distribution (after
temperature / top-k / top-p) are returned as vLLM does, recorded step by step (``SampledLogprobs``). The
checkpoint's own sampling defaults (Qwen2.5-VL-7B-Instruct ships temperature 0.1, top-p 0.001, top-k 1, repetition
penalty 1.05; the tiny kit copies them) are switched off: completions sample the policy's distribution under
``SamplingParams`` only.
"""
from __future__ import annotations

import contextlib
import functools
import time
from typing import Any, Sequence

import torch
from transformers import (LogitsProcessorList, StoppingCriteria, StoppingCriteriaList, TemperatureLogitsWarper, TopKLogitsWarper,
                          TopPLogitsWarper)

from veripo.data.schema import Sample
from veripo.generation.shared_prefill import can_share_prefill, prefilled_generate_kwargs
from veripo.generation.types import Completion, SamplingParams
from veripo.prompt_batch import build_prompt_batch
from veripo.video.cache import FrameCache
from veripo.video.sampling import VideoSampling

VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


def stop_token_ids(tokenizer, stop_at_answer: bool) -> list[int]:
    """EOS ids (+ ``</answer>`` when it is a single token, as in the tiny kit)."""
    ids = []
    for tok in (tokenizer.eos_token, "<|im_end|>", "<|endoftext|>"):
        tid = tokenizer.convert_tokens_to_ids(tok) if tok else None
        if tid is not None and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    if stop_at_answer:
        enc = tokenizer.encode("</answer>", add_special_tokens=False)
        if len(enc) == 1:
            ids.append(enc[0])
    return ids


@functools.lru_cache(maxsize=8)
def _ids_holding(tokenizer, size: int, char: str) -> torch.Tensor:
    """[size] bool: which token ids' pieces contain ``char`` (one scan of the vocabulary per tokenizer and size,
    not one per ``generate`` call: 151k pieces for Qwen's)."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    return torch.tensor([char in (p or "") for p in pieces], dtype=torch.bool)


class StopAfterText(StoppingCriteria):
    """A ``generate`` stopping criterion: a row stops at the token that completes ``text`` in its decoded output
    (vLLM's ``stop`` string; ``include_stop_str_in_output``). Needed when ``</answer>`` is several BPE pieces, as
    in the real Qwen tokenizer, where a piece may also straddle it (``>`` ``<``). Only the decoded tail of the
    last ``window`` tokens is read, and only on rows whose last token holds the text's last character (the token
    that completes the text must: ``</answer>`` ends in an ASCII ``>``, which no byte-level piece hides);
    ``stopped_at[row]`` = the row's new-token count when it stopped (the tokens ``generate`` appends after that
    are padding, never sampled)."""

    def __init__(self, tokenizer, text: str, prompt_len: int) -> None:
        self.tokenizer, self.text, self.prompt_len = tokenizer, text, prompt_len
        self.window = len(text) + 1  # a token holds at least one character
        self.stopped_at: dict[int, int] = {}
        self.may_complete = _ids_holding(tokenizer, len(tokenizer), text[-1])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        new = input_ids.shape[1] - self.prompt_len
        last = input_ids[:, -1].cpu().clamp(0, len(self.may_complete) - 1)
        check = self.may_complete[last].nonzero().flatten().tolist()
        for row in self.stopped_at:
            done[row] = True
        for row in check:
            if row in self.stopped_at:
                continue
            tail = input_ids[row, -self.window:].tolist()
            if self.text in self.tokenizer.decode(tail) and self.text not in self.tokenizer.decode(tail[:-1]):
                self.stopped_at[row] = new  # the last token completed the text: it is the row's end token
                done[row] = True
        return done


def answer_stop_criterion(tokenizer, stop_at_answer: bool, prompt_len: int) -> StopAfterText | None:
    """A string stop after ``</answer>`` when it is several tokens (``stop_token_ids`` covers the one-token case)."""
    if not stop_at_answer or len(tokenizer.encode("</answer>", add_special_tokens=False)) == 1:
        return None
    return StopAfterText(tokenizer, "</answer>", prompt_len)


def suppressed_token_ids(tokenizer) -> list[int]:
    out = []
    for tok in VISION_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(tok)
        if tid is not None and tid != tokenizer.unk_token_id:
            out.append(tid)
    return out


class SampledLogprobs:
    """A logits processor, last in ``generate``'s chain, that keeps the log-prob of each sampled token under the
    distribution it was sampled from (after suppression, temperature, top-k, top-p), holding one ``[N, V]``
    distribution at a time: at step ``s`` the token chosen at step ``s - 1`` is the last column of ``input_ids``.
    (``output_scores=True`` would keep every step's ``[N, V]`` scores: 30 GB for 64 rollouts of 768 tokens over a
    152k vocabulary.) Call :meth:`finish` with the final sequences for the last token."""

    def __init__(self) -> None:
        self._previous: torch.Tensor | None = None
        self.logps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._take(input_ids[:, -1:])
        self._previous = torch.log_softmax(scores.float(), -1)
        return scores

    def _take(self, tokens: torch.Tensor) -> None:
        if self._previous is not None:
            self.logps.append(self._previous.gather(-1, tokens).squeeze(-1).cpu())
            self._previous = None

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """``[N, steps]`` float32 log-probs of ``new_tokens`` (the generated part of the sequences)."""
        if new_tokens.shape[1]:
            self._take(new_tokens[:, -1:])
        out = torch.zeros(new_tokens.shape, dtype=torch.float32)
        if self.logps:
            got = torch.stack(self.logps, 1)
            out[:, : got.shape[1]] = got[:, : out.shape[1]]
        return out


class LastHiddenStates:
    """A forward pre-hook on the LM head that keeps, for each decoding step, the last position's final-layer
    hidden state ``[N, H]`` (detached, float32, on the CPU). ``per_row(lengths)`` gives each row the state of
    the step that sampled its last token: the state after reading all of the rollout's tokens but that last one."""

    def __init__(self, model) -> None:
        self.module = model.get_output_embeddings()
        self.steps: list[torch.Tensor] = []

    def __enter__(self) -> "LastHiddenStates":
        self._handle = self.module.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def _hook(self, module, args) -> None:
        self.steps.append(args[0][:, -1, :].detach().float().cpu())

    def per_row(self, lengths: Sequence[int]) -> torch.Tensor:
        states = torch.stack(self.steps)  # [steps, N, H]
        at = torch.tensor([min(max(n, 1), len(self.steps)) - 1 for n in lengths])
        return states[at, torch.arange(len(lengths))]


def sample_completions(model, tokenizer, inputs: Any, n: int, params: SamplingParams, capture_hidden: bool = False,
                       share_prefill: bool = True) -> list[Completion]:
    """``n`` samples of each row of the left-padded ``inputs`` (rows * n completions, row-major). ``share_prefill``:
    each prompt is read once for its ``n`` samples (``veripo.generation.shared_prefill``)."""
    tok = tokenizer
    stops = stop_token_ids(tok, params.stop_at_answer)
    greedy = params.temperature <= 0
    recorder = SampledLogprobs()
    chain = []  # the sampling warpers, in HF's own order, then the recorder; HF's are switched off
    if not greedy:
        if params.temperature != 1.0:
            chain.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            chain.append(TopKLogitsWarper(top_k=params.top_k))
        if params.top_p < 1.0:
            chain.append(TopPLogitsWarper(top_p=params.top_p))
    gen_kwargs: dict[str, Any] = dict(
        max_new_tokens=params.max_new_tokens, do_sample=not greedy, num_return_sequences=n,
        suppress_tokens=suppressed_token_ids(tok), eos_token_id=stops, pad_token_id=tok.pad_token_id,
        return_dict_in_generate=True, use_cache=True, logits_processor=LogitsProcessorList(chain + [recorder]),
        repetition_penalty=params.repetition_penalty,  # ours, not the checkpoint's default
    )
    if not greedy:  # HF's own warpers off (ours are in the chain, before the recorder)
        gen_kwargs.update(temperature=1.0, top_p=1.0, top_k=0)
    device = next(model.parameters()).device  # the processor's tensors are on the CPU
    inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in inputs.items()}
    was_training = model.training
    model.eval()
    hidden = LastHiddenStates(model) if capture_hidden else None
    text_stop = answer_stop_criterion(tok, params.stop_at_answer, inputs["input_ids"].shape[1])
    if text_stop is not None:
        gen_kwargs["stopping_criteria"] = StoppingCriteriaList([text_stop])
    try:
        if share_prefill and can_share_prefill(model, inputs, n):
            inputs = prefilled_generate_kwargs(model, inputs, n)  # before the hidden-state hook: not a decode step
            gen_kwargs["num_return_sequences"] = 1
        with hidden if hidden is not None else contextlib.nullcontext():
            result = model.generate(**inputs, **gen_kwargs)
    finally:
        model.train(was_training)
    prompt_len = inputs["input_ids"].shape[1]
    new_tokens = result.sequences[:, prompt_len:]
    logps = recorder.finish(new_tokens)
    seqs = new_tokens.cpu()
    completions = []
    stop_set = set(stops)
    for row in range(seqs.shape[0]):
        ids = seqs[row].tolist()
        finish = "length"
        if text_stop is not None and row in text_stop.stopped_at:
            ids = ids[: text_stop.stopped_at[row]]  # ends at the token completing </answer> (no EOS in it)
        for j, t in enumerate(ids):
            if t in stop_set:
                ids = ids[: j + 1]
                finish = "stop"
                break
        else:
            if text_stop is not None and row in text_stop.stopped_at:
                finish = "stop"
            else:
                ids = [t for t in ids if t != tok.pad_token_id] if tok.pad_token_id not in stop_set else ids
        text = tok.decode(ids, skip_special_tokens=True)
        completions.append(Completion(text=text.strip(), token_ids=ids,
                                      logps=[float(x) for x in logps[row, : len(ids)].tolist()],
                                      finish_reason=finish))
    if hidden is not None:
        for c, state in zip(completions, hidden.per_row([len(c.token_ids) for c in completions])):
            c.features = state
    return completions


@torch.no_grad()
def generate_completions(model, processor, samples: Sequence[Sample], params: SamplingParams, n: int = 1,
                         video_sampling: VideoSampling | None = None, frame_cache: FrameCache | None = None,
                         batch_size: int = 8, reasoning: bool = True, frame_transform=None
                         ) -> tuple[list[list[Completion]], dict[str, float]]:
    """``n`` completions of each sample (one inner list per sample), ``batch_size`` prompts per ``generate`` call;
    and the seconds spent preparing the prompts and generating (``prepare_s``, ``generate_s``)."""
    frame_cache = frame_cache or FrameCache()
    out: list[list[Completion]] = []
    t_prep = t_gen = 0.0
    for start in range(0, len(samples), batch_size):
        t0 = time.perf_counter()
        batch = build_prompt_batch(processor, samples[start: start + batch_size], frame_cache, video_sampling,
                                   reasoning=reasoning, frame_transform=frame_transform)
        t1 = time.perf_counter()
        flat = sample_completions(model, processor.tokenizer, batch.inputs, n, params)
        out.extend(flat[i * n: (i + 1) * n] for i in range(len(batch)))
        t_prep += t1 - t0
        t_gen += time.perf_counter() - t1
    return out, {"prepare_s": t_prep, "generate_s": t_gen}
