"""The value heads of the value-based estimators (``ppo_gae``, ``pdppo``) inside the GRPO stage.

    critic = ValueCritic.create(cfg.algo.value_heads, estimator_name, hidden_size)
    logps, values = critic.estimate(model, seqs, temperature, micro_batch_size)   # one no-grad forward
    adv = step_advantages(..., values=values, response_mask=seqs.completion_mask)  # GAE from the heads
    metrics = critic.update(adv.returns, seqs.completion_mask, adv.keep)           # clipped value loss, own AdamW

The heads (``veripo.models.value_heads.ValueHeads``: ``num_heads`` x ``Linear(hidden, 1)``) read the policy's
last-layer hidden state at the position that predicts each completion token, i.e. the state (x, y_<t) the value
is of. They sit on *detached* hidden states (a separate critic on the policy's features: the value loss never moves
the policy), so they have their own optimiser and the policy loss is unchanged. The forward that gives the hidden
states also gives the full-precision log-probs of the sampled tokens (PPO's ``old_logps``), so a value-based
estimator costs one no-grad forward per step. The value loss is PPO's clipped one
(``veripo.algos.value.clipped_value_loss``) against the estimator's lambda-returns, ``algo.ppo_epochs`` AdamW
steps per GRPO step on the hidden states of that forward. The heads and their optimiser are saved in every
checkpoint (restored on ``--resume``) and beside the final policy (``final/value_heads.pt``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from veripo.algos.value import clipped_value_loss
from veripo.config import doc, require
from veripo.models.value_heads import ValueHeads, save_value_heads
from veripo.sequences import SequenceBatch, completion_logps_and_states

# how many heads each value-based estimator reads (values=, values2=)
HEADS_OF = {"ppo_gae": 1, "gae": 1, "pdppo": 2}


@dataclasses.dataclass
class ValueHeadsConfig:
    lr: float = doc("AdamW learning rate of the value heads (their own optimiser).", 1e-3)
    value_clip: float | None = doc("PPO value clip range around the heads' estimates at scoring time (TRL 0.2, verl "
                                   "0.5); null = plain squared error.", 0.2)
    grad_clip: float = doc("Gradient-norm clip of the value heads.", 1.0)
    loss_agg_mode: str = doc("How the value loss is averaged: bnpo (token mean over the batch) | grpo | dapo.", "bnpo")

    def check(self, prefix: str = "") -> None:
        require(self.lr > 0, f"{prefix}lr", self.lr, "must be > 0 (e.g. 1e-3)")
        require(self.value_clip is None or self.value_clip > 0, f"{prefix}value_clip", self.value_clip,
                "must be > 0, or null for an unclipped value loss")
        require(self.grad_clip > 0, f"{prefix}grad_clip", self.grad_clip, "must be > 0")
        require(self.loss_agg_mode in ("bnpo", "grpo", "dapo"), f"{prefix}loss_agg_mode", self.loss_agg_mode,
                "must be bnpo, grpo or dapo")


def needs_values(estimator_name: str) -> bool:
    return estimator_name in HEADS_OF


class ValueCritic:
    """Value heads, their optimiser, and the hidden states of the step being trained (see the module doc)."""

    def __init__(self, cfg: ValueHeadsConfig, heads: ValueHeads):
        self.cfg, self.heads = cfg, heads
        self.optimizer = torch.optim.AdamW(heads.parameters(), lr=cfg.lr, weight_decay=0.0)
        self._states: torch.Tensor | None = None   # [N, T, H] of the step's forward
        self._values: torch.Tensor | None = None   # [N, T, K] the heads' estimates then (the clip's anchor)

    @classmethod
    def create(cls, cfg: ValueHeadsConfig, estimator_name: str, hidden_size: int, device: Any = "cpu") -> "ValueCritic":
        return cls(cfg, ValueHeads(hidden_size, HEADS_OF[estimator_name]).to(device))

    @torch.no_grad()
    def estimate(self, model: Any, seqs: SequenceBatch, temperature: float, micro_batch_size: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's log-probs of the sampled tokens [N, T] and the heads' values [N, T, K] (0 on padding)."""
        logps, states = completion_logps_and_states(model, seqs, temperature, micro_batch_size)
        self._states = states
        self._values = self.heads(states) * seqs.completion_mask.to(states.device).unsqueeze(-1)
        return logps, self._values

    def update(self, returns: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor, epochs: int = 1
               ) -> dict[str, float]:
        """``epochs`` AdamW steps of the clipped value loss on this step's hidden states (``estimate`` first)."""
        if self._states is None or self._values is None:
            raise RuntimeError("ValueCritic.update before estimate: the step's hidden states are missing")
        target = returns if returns.dim() == 3 else returns.unsqueeze(-1)
        device = self._states.device
        target, mask, keep = target.to(device), mask.to(device), keep.to(device)
        metrics: dict[str, float] = {}
        self.heads.train()
        for _ in range(epochs):
            values = self.heads(self._states)
            loss, metrics = clipped_value_loss(values, self._values, target, mask, clip_range=self.cfg.value_clip,
                                               loss_agg_mode=self.cfg.loss_agg_mode, keep_mask=keep)
            self.optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):  # never step the heads on NaN (the policy's StepGuard does the same)
                metrics["vf_skipped"] = 1.0
                break
            loss.backward()
            metrics["vf_grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.heads.parameters(), self.cfg.grad_clip))
            self.optimizer.step()
        self._states = self._values = None
        return_mean = float(target[mask > 0].mean()) if bool((mask > 0).any()) else 0.0
        return {f"value/{k}": float(v) for k, v in {**metrics, "return_mean": return_mean}.items()}

    # ---------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"heads": self.heads.state_dict(), "optimizer": self.optimizer.state_dict(),
                "config": self.heads.config()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("config") != self.heads.config():
            from veripo.errors import ConfigError

            raise ConfigError(f"the checkpoint's value heads {state.get('config')} do not fit this run's "
                              f"{self.heads.config()} (was algo.advantage_estimator changed?)")
        self.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])

    def save(self, folder: str | Path) -> Path:
        return save_value_heads(self.heads, Path(folder) / "value_heads.pt")
