"""Partial rollouts: sample a bounded head, then continue chosen heads later (tree rollouts, ARRoL pruning).

An engine whose ``capabilities.continues_partial`` is true (veripo/rollout/engine.py) continues a partial rollout
with ``continue_from(batch, prompt_index, prefixes, n, params)``: the HF engine,
:meth:`veripo.rollout.hf_engine.HFEngine.continue_from`, and the colocated vLLM engine, which sends the prompt as
token ids followed by the prefix. Because autoregressive sampling
factorises, ``head + continuation`` is distributed exactly as a rollout sampled in one go, and its log-probs
are the concatenation of the two parts'.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from veripo.errors import ConfigError
from veripo.rollout.engine import capabilities
from veripo.generation.types import Completion, SamplingParams


def supports_partial(engine: Any) -> bool:
    """Whether ``engine`` can continue partial rollouts (tree rollouts and mid-generation pruning need it): the HF
    engine, and the colocated vLLM engine (not an OpenAI-compatible server)."""
    return capabilities(engine).continues_partial


def require_partial(engine: Any, what: str) -> None:
    if not supports_partial(engine):
        raise ConfigError(f"{what} needs a rollout engine that continues partial rollouts (rollout.engine=hf, or "
                          f"the colocated vllm engine); this {getattr(engine, 'name', type(engine).__name__)} "
                          "engine does not")


def with_budget(params: SamplingParams, max_new_tokens: int) -> SamplingParams:
    return dataclasses.replace(params, max_new_tokens=max_new_tokens)


def join(tokenizer: Any, head: Completion, tail: Completion) -> Completion:
    """``head`` followed by its continuation ``tail``: one completion (text decoded from the joined ids)."""
    ids = list(head.token_ids) + list(tail.token_ids)
    return Completion(text=tokenizer.decode(ids, skip_special_tokens=True).strip(), token_ids=ids,
                      logps=list(head.logps) + list(tail.logps), finish_reason=tail.finish_reason,
                      features=head.features)


def is_finished(c: Completion, max_new_tokens: int) -> bool:
    """A head that stopped (EOS / ``</answer>``) or used the whole budget needs no continuation."""
    return c.finish_reason == "stop" or len(c.token_ids) >= max_new_tokens


def _per_count(counts: Sequence[int], sample: Callable[[list[int], int], Sequence[Sequence[Completion]]]
               ) -> list[list[Completion]]:
    """``counts[i]`` rollouts for prompt ``i``: ``sample(idx, n)`` once per distinct count ``n`` (the prompts
    ``idx`` that want ``n``; it returns one list of ``n`` per prompt), prompt order kept."""
    out: list[list[Completion]] = [[] for _ in counts]
    for n in sorted({n for n in counts if n > 0}):
        idx = [i for i, m in enumerate(counts) if m == n]
        for i, comps in zip(idx, sample(idx, n)):
            out[i] = list(comps)
    return out


def sample_heads(engine: Any, batch: Any, counts: Sequence[int], params: SamplingParams,
                 capture_hidden: bool = False) -> list[list[Completion]]:
    """``counts[i]`` fresh rollouts of prompt ``i`` of ``batch`` under ``params`` (one engine call per distinct
    count, prompt order kept); ``capture_hidden``: each carries its last hidden state in ``features``."""
    extra = {"capture_hidden": True} if capture_hidden else {}
    return _per_count(counts, lambda idx, n: engine.continue_from(batch, idx, [[] for _ in idx], n, params, **extra))


def generate_groups(engine: Any, samples: Sequence[Any], counts: Sequence[int], params: SamplingParams,
                    batch: Any = None) -> list[list[Completion]]:
    """``counts[i]`` complete rollouts of ``samples[i]`` (one engine call per distinct count, prompt order kept):
    from ``batch`` (``engine.partial_batch(samples)``, already built) when given, else ``engine.generate``."""
    if batch is not None:
        return sample_heads(engine, batch, counts, params)
    return _per_count(counts, lambda idx, n: engine.generate([samples[i] for i in idx], n=n, params=params))
