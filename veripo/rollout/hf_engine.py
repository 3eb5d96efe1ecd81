"""Rollout engine on Hugging Face ``generate`` (CPU and GPU; the default): the engine contract around
:mod:`veripo.generation.hf` (batched, left-padded sampling with recorded log-probs, stop after ``</answer>``,
vision tokens suppressed, the checkpoint's sampling defaults off; ``repetition_penalty`` is 1.0 unless asked for,
e.g. by an evaluation that reproduces VerIPO's 1.05).
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch

from veripo.generation.hf import generate_completions, sample_completions
from veripo.generation.types import Completion, SamplingParams
from veripo.prompt_batch import PromptBatch, build_prompt_batch
from veripo.rollout.engine import EngineCapabilities, EngineSpec
from veripo.sequences import extend_prompts, select_prompts
from veripo.video.cache import FrameCache
from veripo.video.sampling import VideoSampling


class HFEngine:
    """``generate(samples, n, ...) -> list[list[Completion]]`` (one inner list of ``n`` per sample), ``batch_size``
    prompts per ``generate`` call; ``continue_from`` puts up to ``max_sequences`` sequences in one call."""

    name = "hf"
    # it samples the policy object itself (nothing to sync), continues partial rollouts exactly, and reads the
    # last hidden state while it decodes
    capabilities = EngineCapabilities(continues_partial=True, hidden_states=True, receives_weights=False,
                                      prunes_midgen=True, sampling_params=True, prompt_modes=True, swaps_model=True)

    def __init__(self, model, processor, video_sampling: VideoSampling | None = None,
                 frame_cache: FrameCache | None = None, batch_size: int = 8, reasoning: bool = True,
                 max_sequences: int = 64):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.video_sampling = video_sampling
        self.frame_cache = frame_cache or FrameCache()
        self.batch_size = batch_size
        self.max_sequences = max(1, max_sequences)  # sequences per continue_from call (rows x n)
        self.reasoning = reasoning
        self.last_timings: dict[str, float] = {}

    @classmethod
    def build(cls, spec: EngineSpec, model: Any = None, processor: Any = None) -> "HFEngine":
        """The engine for the live ``model`` (a training stage) or for ``spec.model_path``, loaded (evaluation)."""
        if model is None:
            from veripo.models.load import load_policy

            model, processor = load_policy(spec.model_path)
        return cls(model, processor, spec.video, batch_size=spec.batch_size, max_sequences=spec.max_sequences)

    def with_model(self, model: Any) -> "HFEngine":
        """This engine sampling ``model`` instead (same processor, frame cache and settings): Sol-RL's int8 copy."""
        other = copy.copy(self)
        other.model = model
        return other

    def sync_weights(self, model: Any) -> int:
        """Nothing to send: this engine samples the policy object the trainer updates."""
        return 0

    def partial_batch(self, samples: Sequence[Any]) -> PromptBatch:
        """What ``continue_from`` takes: the processor batch (the update reads the very same batch)."""
        return self.prompt_batch(samples)

    def prompt_batch(self, samples: Sequence[Any], frame_transform=None) -> PromptBatch:
        return build_prompt_batch(self.processor, samples, self.frame_cache, self.video_sampling,
                                  reasoning=self.reasoning, frame_transform=frame_transform)

    @torch.no_grad()
    def generate(self, samples: Sequence[Any], n: int = 1, temperature: float = 0.0, max_new_tokens: int = 256,
                 params: SamplingParams | None = None, frame_transform=None) -> list[list[Completion]]:
        params = params or SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens)
        out, self.last_timings = generate_completions(self.model, self.processor, samples, params, n,
                                                      self.video_sampling, self.frame_cache, self.batch_size,
                                                      self.reasoning, frame_transform)
        return out

    @torch.no_grad()
    def generate_from_batch(self, batch: PromptBatch, n: int, params: SamplingParams) -> list[list[Completion]]:
        flat = sample_completions(self.model, self.tokenizer, batch.inputs, n, params)
        return [flat[i * n: (i + 1) * n] for i in range(len(batch))]

    @torch.no_grad()
    def continue_from(self, batch: PromptBatch, prompt_index: Sequence[int], prefixes: Sequence[Sequence[int]],
                      n: int, params: SamplingParams, capture_hidden: bool = False) -> list[list[Completion]]:
        """``n`` continuations of each partial rollout: row ``r`` is prompt ``prompt_index[r]`` of ``batch``
        followed by the tokens ``prefixes[r]`` already sampled; ``params.max_new_tokens`` bounds the NEW tokens.

        The prefix is re-read in one parallel forward (prefill), never decoded again; the continuation is an
        exact sample of the same policy given the prefix (autoregressive sampling factorises), so
        ``prefix + continuation`` is distributed as a rollout sampled in one go. Tree rollouts and ARRoL's
        mid-generation pruning are built on this. Returns one list of ``n`` per row (only the new tokens);
        ``capture_hidden``: each completion carries its last hidden state (``veripo.generation.hf.LastHiddenStates``) in ``features``.
        """
        out: list[list[Completion]] = []
        per_call = max(1, self.max_sequences // max(1, n))
        for start in range(0, len(prefixes), per_call):
            rows = range(start, min(len(prefixes), start + per_call))
            inputs = extend_prompts(select_prompts(batch, [prompt_index[r] for r in rows]),
                                    [prefixes[r] for r in rows], self.tokenizer.pad_token_id)
            flat = sample_completions(self.model, self.tokenizer, inputs, n, params, capture_hidden)
            out.extend(flat[i * n: (i + 1) * n] for i in range(len(rows)))
        return out
