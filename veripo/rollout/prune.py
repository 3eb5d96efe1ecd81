"""ARRoL early pruning around the GRPO trainer's generation (Xu et al. 2026, ACL, "Prune as You Generate";
arXiv 2603.24840; algorithms.md A8, a reconstruction: the paper's code is not public).

For a prompt that should get ``n`` rollouts, a pool of ``N = ceil(pool_factor n)`` is started and ``n`` are kept
whose predicted success ``p_hat`` is balanced around ``rho`` (``ARRoLPruner.select``; random while the head is not
trusted). Two modes (``rollout.prune_kwargs.mode``):

* ``midgen`` (the default on ``rollout.engine=hf``; opt-in on the colocated vLLM engine): ARRoL's
  "prune as you generate". The pool is sampled for ``prefix_tokens`` tokens only, the head scores those heads,
  and only the ``n`` survivors are continued to the end; the pruned heads cost ``prefix_tokens`` tokens each.
  Generation decodes about ``N k + n (T - k)`` tokens instead of ``N T`` for post-hoc selection.
* ``posthoc``: the whole pool is generated to completion, then ``n`` are kept (any engine, e.g. vLLM). Same
  selection, no saving: it costs ``pool_factor`` x the generation.

Two heads (``rollout.prune_kwargs.head``), both calibrated online as ARRoL's is (the survivors' verified outcomes
feed a running AUC of the predictions made when they were selected; the head is trusted once that AUC reaches
``min_auc`` over ``min_history`` outcomes, and selection is random until then):

* ``proxy`` (default, any engine): no parameters,
      p_hat(y) = exp( mean_{t < k} log pi_old(y_t | ...) )   (geometric-mean probability of the first k tokens);
* ``learned`` (mid-generation on the HF engine): ARRoL's lightweight head, a logistic regression on the policy's
  last-layer hidden state at the end of each head (``veripo.rollout.quality_head.QualityHead``), refitted after
  every step on the survivors' features and verified outcomes. The trainer stores those features beside the
  rollout store, so the steps a resumed run replays refit the head as the killed run did.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from veripo.rollout.prune_state import ARRoLPruner
from veripo.rollout.quality_head import QualityHead
from veripo.rollout.control import step_rng, take_options
from veripo.errors import ConfigError
from veripo.rollout.engine import capabilities
from veripo.rollout.partial import generate_groups, is_finished, join, sample_heads, with_budget
from veripo.generation.types import Completion, SamplingParams

PRUNERS = ("none", "arrol")
MODES = ("auto", "midgen", "posthoc")
HEADS = ("proxy", "learned")


def prefix_quality(completion: Completion, prefix_tokens: int) -> float:
    """The proxy head: geometric-mean sampling probability of the first ``prefix_tokens`` tokens (0.5 if empty)."""
    head = completion.logps[:prefix_tokens]
    return math.exp(sum(head) / len(head)) if head else 0.5


class PrefixPruner:
    """ARRoL pruning of ``pool_factor x n`` rollouts down to ``n`` per prompt (see the module doc).

    Options (``rollout.prune_kwargs``): mode (auto | midgen | posthoc; auto = midgen on the HF engine, posthoc on
    vLLM), pool_factor (2.0), prefix_tokens (16), head (proxy | learned), head_history (512 outcomes the learned
    head fits on), trust_head (auto | always | never: auto = the pruner's AUC rule), and ARRoLPruner's rho,
    min_auc, min_history, history, degenerate_margin, max_subsets.
    """

    PRUNER = ("rho", "min_auc", "min_history", "history", "degenerate_margin", "max_subsets")

    def __init__(self, seed: int = 0, rank: int = 0, **kwargs: Any) -> None:
        kw = take_options(kwargs, self.PRUNER + ("mode", "pool_factor", "prefix_tokens", "trust_head", "head",
                                                 "head_history"), "rollout.prune_kwargs")
        head = str(kw.pop("head", "proxy"))
        if head not in HEADS:
            raise ConfigError(f"rollout.prune_kwargs.head must be one of {'|'.join(HEADS)}, got {head!r}")
        self.quality_head = QualityHead(history=int(kw.pop("head_history", 512))) if head == "learned" else None
        self.mode = str(kw.pop("mode", "auto"))
        self.pool_factor = float(kw.pop("pool_factor", 2.0))
        self.prefix_tokens = int(kw.pop("prefix_tokens", 16))
        trust = str(kw.pop("trust_head", "auto"))
        if (self.pool_factor < 1 or self.prefix_tokens < 1 or trust not in ("auto", "always", "never")
                or self.mode not in MODES):
            raise ConfigError("rollout.prune_kwargs: need pool_factor >= 1, prefix_tokens >= 1, trust_head in "
                             f"auto|always|never, mode in {'|'.join(MODES)} (got {self.pool_factor}, "
                             f"{self.prefix_tokens}, {trust}, {self.mode})")
        self.use_head = {"auto": None, "always": True, "never": False}[trust]
        self.seed, self.rank = seed, rank  # random pruning differs between the ranks' prompts
        self.pruner = ARRoLPruner(seed=seed, **kw)

    def resolve_mode(self, engine: Any) -> str:
        """Fix ``auto`` for ``engine``; ``midgen`` on an engine that cannot continue rollouts is an error."""
        can = capabilities(engine)
        if self.mode == "auto":  # midgen on vLLM is opt-in until a GPU run has checked it
            self.mode = "midgen" if can.continues_partial and can.prunes_midgen else "posthoc"
        elif self.mode == "midgen" and not can.continues_partial:
            raise ConfigError("rollout.prune_kwargs.mode=midgen needs an engine that continues partial rollouts "
                             "(rollout.engine=hf, or the colocated vllm engine); use mode=posthoc with this one")
        if self.quality_head is not None and (self.mode != "midgen" or not can.hidden_states):
            raise ConfigError("rollout.prune_kwargs.head=learned reads the policy's hidden states while it "
                             "generates: it needs mode=midgen on rollout.engine=hf")
        return self.mode

    def pool_size(self, n: int) -> int:
        return max(n, math.ceil(self.pool_factor * n))

    def p_hat(self, completions: Sequence[Completion]) -> list[float]:
        """Predicted success of each rollout: the learned head's once it is fitted and the rollouts carry their
        hidden states, else the proxy."""
        head = self.quality_head
        if head is not None and head.fitted and completions and all(c.features is not None for c in completions):
            return head.predict(torch.stack([c.features for c in completions])).tolist()
        return [prefix_quality(c, self.prefix_tokens) for c in completions]

    def prune(self, step: int, pools: Sequence[Sequence[Completion]], sizes: Sequence[int], call: int = 0
              ) -> tuple[list[list[Completion]], list[list[Completion]]]:
        """(kept, pruned) per prompt; ``len(kept[i]) == min(sizes[i], len(pools[i]))``, pool order kept."""
        salt = 100 + call + 10_000 * self.rank
        self.pruner._rng.manual_seed(int(step_rng(self.seed, step, salt).integers(2 ** 62)))
        kept, pruned = [], []
        for pool, n in zip(pools, sizes):
            mask = self.pruner.select(torch.tensor(self.p_hat(pool)), n, use_head=self.use_head).tolist()
            kept.append([c for c, m in zip(pool, mask) if m])
            pruned.append([c for c, m in zip(pool, mask) if not m])
        return kept, pruned

    def generate(self, engine: Any, step: int, samples: Sequence[Any], sizes: Sequence[int], params: SamplingParams,
                 call: int = 0, batch: Any = None) -> tuple[list[list[Completion]], list[list[Completion]]]:
        """(kept, pruned) rollouts per prompt, ``sizes[i]`` kept for prompt ``i``. In ``midgen`` mode the pruned
        are heads of at most ``prefix_tokens`` tokens and only the kept are finished. ``batch``:
        ``engine.partial_batch(samples)`` if the caller has it already."""
        mode = self.resolve_mode(engine)
        pools = [self.pool_size(n) for n in sizes]
        if mode == "posthoc":
            return self.prune(step, generate_groups(engine, samples, pools, params, batch), sizes, call)
        batch = engine.partial_batch(samples) if batch is None else batch
        k = min(self.prefix_tokens, params.max_new_tokens)
        heads = sample_heads(engine, batch, pools, with_budget(params, k),
                             capture_hidden=self.quality_head is not None)
        kept, pruned = self.prune(step, heads, sizes, call)
        todo = [(i, j) for i, group in enumerate(kept) for j, c in enumerate(group)
                if not is_finished(c, params.max_new_tokens)]
        if todo:
            tails = engine.continue_from(batch, [i for i, _ in todo], [kept[i][j].token_ids for i, j in todo], 1,
                                         with_budget(params, params.max_new_tokens - k))
            for (i, j), (tail,) in zip(todo, tails):
                kept[i][j] = join(engine.tokenizer, kept[i][j], tail)
        return kept, pruned

    def observe(self, p_hats: Sequence[float], correct: Sequence[bool], features: Sequence[Any] = ()
                ) -> dict[str, float]:
        """Calibrate on finished survivors: their ``p_hat`` at selection and verified outcome feed the AUC; the
        learned head is refitted on their ``features`` (hidden states) when given (as ARRoL trains its head on
        completed rollouts)."""
        labels = [int(bool(c)) for c in correct]
        self.pruner.record(list(p_hats), labels)
        if self.quality_head is not None and features and all(f is not None for f in features):
            self.quality_head.update(torch.stack(list(features)), torch.tensor(labels))
        auc = self.pruner.auc
        trusted = self.pruner.head_trusted if self.use_head is None else self.use_head
        out = {"prune/head_trusted": float(trusted), **({"prune/head_auc": auc} if auc is not None else {})}
        if self.quality_head is not None:
            out["prune/head_fitted"] = float(self.quality_head.fitted)
        return out

    def state_dict(self) -> dict[str, Any]:
        state = {"name": "arrol", "pruner": self.pruner.state_dict()}
        if self.quality_head is not None:
            state["quality_head"] = self.quality_head.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != "arrol":
            raise ValueError(f"checkpoint holds pruner state {state.get('name')!r}, the config asks for arrol")
        self.pruner.load_state_dict(state["pruner"])
        if self.quality_head is not None and state.get("quality_head") is not None:
            self.quality_head.load_state_dict(state["quality_head"])


def build_pruner(name: str, seed: int = 0, kwargs: dict[str, Any] | None = None, rank: int = 0
                 ) -> PrefixPruner | None:
    if name == "none":
        if kwargs:
            raise ConfigError(f"rollout.prune_kwargs {sorted(kwargs)} given but rollout.prune is none")
        return None
    if name == "arrol":
        return PrefixPruner(seed, rank, **(kwargs or {}))
    raise ConfigError(f"rollout.prune must be one of {', '.join(PRUNERS)}, got {name!r}")
