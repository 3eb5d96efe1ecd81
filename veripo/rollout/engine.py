"""The rollout engine contract (``RolloutEngine``), what an engine can do (``EngineCapabilities``), and the one
factory every stage uses (``build_engine``: the GRPO stage, the evaluation harness, the loop's held-out checks).

An engine turns prompts into :class:`~veripo.generation.types.Completion` objects:

    engine.prompt_batch(samples)                    -> the policy's processor batch (what training forwards read)
    engine.generate(samples, n, params=...)         -> n completions per sample
    engine.partial_batch(samples)                   -> what continue_from takes (capability continues_partial)
    engine.continue_from(batch, idx, prefixes, n, params, capture_hidden=False)
                                                    -> continuations of partial rollouts (trees, ARRoL mid-generation)
    engine.sync_weights(model)                      -> receive the trained policy's weights (receives_weights)

Adding an engine: write its module with a class that satisfies ``RolloutEngine`` and has
``build(spec, model, processor)``, then add one line to ``ENGINES``.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Protocol, Sequence, runtime_checkable

from veripo.errors import ConfigError
from veripo.generation.types import Completion, SamplingParams


@dataclasses.dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do beyond ``generate``; the stages check these instead of probing attributes.

    continues_partial   ``partial_batch`` + ``continue_from`` work (tree rollouts, ARRoL mid-generation pruning)
    hidden_states       ``continue_from(capture_hidden=True)`` fills ``Completion.features`` (ARRoL learned head)
    receives_weights    it holds its own copy of the weights: ``sync_weights(model)`` after every update
    prunes_midgen       ARRoL's ``mode=auto`` picks mid-generation pruning on it (checked on this engine)
    sampling_params     ``generate(..., params=SamplingParams)`` takes the full sampling settings (repetition penalty)
    prompt_modes        it reads ``engine.reasoning``: the reasoning prompt (think/answer) or the direct one
    swaps_model         ``with_model(model)`` gives an engine that samples another model object through the same
                        processor (Sol-RL's cheap pool samples an int8 copy of the policy)
    A minimal engine (``generate(samples, n, temperature, max_new_tokens)`` only, e.g. a scripted stand-in in a
    test) has none of these.
    """

    continues_partial: bool = False
    hidden_states: bool = False
    receives_weights: bool = False
    prunes_midgen: bool = False
    sampling_params: bool = False
    prompt_modes: bool = False
    swaps_model: bool = False


@runtime_checkable
class RolloutEngine(Protocol):
    name: str
    tokenizer: Any
    reasoning: bool              # the reasoning prompt (think/answer) or the direct one

    @property
    def capabilities(self) -> EngineCapabilities: ...

    def prompt_batch(self, samples: Sequence[Any], frame_transform: Any = None) -> Any: ...

    def generate(self, samples: Sequence[Any], n: int = 1, temperature: float = 0.0, max_new_tokens: int = 256,
                 params: SamplingParams | None = None, frame_transform: Any = None) -> list[list[Completion]]: ...

    def partial_batch(self, samples: Sequence[Any]) -> Any: ...

    def continue_from(self, batch: Any, prompt_index: Sequence[int], prefixes: Sequence[Sequence[int]], n: int,
                      params: SamplingParams, capture_hidden: bool = False) -> list[list[Completion]]: ...

    def sync_weights(self, model: Any) -> int: ...


@dataclasses.dataclass
class EngineSpec:
    """How to build an engine. ``model_path`` is loaded when no live model is given (evaluation); a training stage
    passes its policy, which the engine samples (HF) or receives the weights of (colocated vLLM)."""

    name: str = "hf"
    model_path: str | None = None
    video: Any = None                       # veripo.video.sampling.VideoSampling
    batch_size: int = 8                     # prompts per generate call
    max_sequences: int = 64                 # sequences per continue_from call (HF)
    seed: int = 0
    dtype: str = "auto"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # engine-specific (vLLM: memory share, ...)


# name -> "module:Class"; the class has ``build(spec, model, processor)``. Modules are imported only when asked for
# (vLLM is a GPU extra).
ENGINES: dict[str, str] = {
    "hf": "veripo.rollout.hf_engine:HFEngine",
    "vllm": "veripo.rollout.vllm_engine:VLLMEngine",
}


def engine_class(name: str) -> Any:
    if name not in ENGINES:
        raise ConfigError(f"rollout engine {name!r} is not one of {', '.join(ENGINES)}")
    module, cls = ENGINES[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise ConfigError(f"rollout engine {name!r} is unavailable here ({e})") from None


def resolve_engine_name(name: str, model_path: str | None = None) -> str:
    """``auto``: vLLM where CUDA and vLLM are both present, else the HF engine; also the HF engine for a LoRA
    adapter folder, which vLLM would serve as its base model (``--engine vllm`` refuses one)."""
    if name != "auto":
        return name
    import importlib.util
    from pathlib import Path

    import torch

    adapter = model_path is not None and (Path(model_path) / "adapter_config.json").exists()
    return "vllm" if (torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None
                      and not adapter) else "hf"


def build_engine(spec: EngineSpec, model: Any = None, processor: Any = None) -> RolloutEngine:
    """The engine ``spec.name`` names (``auto`` resolved), for the live ``model`` or ``spec.model_path``."""
    name = resolve_engine_name(spec.name, spec.model_path)
    return engine_class(name).build(dataclasses.replace(spec, name=name), model, processor)


def capabilities(engine: Any) -> EngineCapabilities:
    """An engine's capabilities; a minimal engine (``generate`` only, e.g. a scripted stand-in) has none."""
    return getattr(engine, "capabilities", None) or EngineCapabilities()
