"""ARRoL's lightweight quality head (Xu et al. 2026, ACL, arXiv 2603.24840; algorithms.md A8, a reconstruction:
the paper's code is not public): predict whether a partial rollout will be verified correct from the policy's
last-layer hidden state at its prefix, learned on the fly from the verified outcomes of finished rollouts.

Here it is a logistic regression on standardised features over a sliding window of the latest examples:

    z = (h - mu) / sigma                       (mu, sigma: mean / std of the window's features, per dimension)
    p_hat = sigmoid(w . z + b)
    fit:  min_{w,b}  mean_i BCE(p_hat_i, y_i) + (l2 / 2) |w|^2     (full-batch gradient steps, warm-started)

Deterministic (no sampling), small (one weight per hidden unit), and detached from the policy. Until it has seen
both outcomes it predicts nothing (``fitted`` is False) and the pruner falls back to its proxy.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class QualityHead:
    def __init__(self, history: int = 512, l2: float = 1e-2, steps: int = 100, lr: float = 0.5) -> None:
        if history < 2 or steps < 1 or lr <= 0 or l2 < 0:
            raise ValueError(f"quality head: need history >= 2, steps >= 1, lr > 0, l2 >= 0 "
                             f"(got {history}, {steps}, {lr}, {l2})")
        self.history, self.l2, self.steps, self.lr = history, l2, steps, lr
        self.features: Tensor | None = None      # [M, H] the window
        self.labels: Tensor | None = None        # [M]
        self.weight: Tensor | None = None        # [H]
        self.bias = torch.zeros(())
        self.mean: Tensor | None = None
        self.std: Tensor | None = None

    @property
    def fitted(self) -> bool:
        return self.weight is not None

    def _standardise(self, features: Tensor) -> Tensor:
        return (features.float() - self.mean) / self.std

    @torch.no_grad()
    def predict(self, features: Tensor) -> Tensor:
        """``p_hat`` [M] for features [M, H] (0.5 everywhere before the first fit)."""
        if not self.fitted:
            return torch.full((features.shape[0],), 0.5)
        return torch.sigmoid(self._standardise(features) @ self.weight + self.bias)

    def update(self, features: Tensor, labels: Tensor) -> None:
        """Add finished rollouts (features [m, H], outcomes [m] in {0, 1}) to the window and refit."""
        features, labels = features.detach().float().cpu(), labels.detach().float().cpu().view(-1)
        if features.shape[0] != labels.shape[0]:
            raise ValueError(f"{features.shape[0]} feature rows for {labels.shape[0]} outcomes")
        if self.features is not None and self.features.shape[1] != features.shape[1]:
            raise ValueError(f"features have {features.shape[1]} dimensions, the head was fitted on "
                             f"{self.features.shape[1]}")
        self.features = features if self.features is None else torch.cat([self.features, features])[-self.history:]
        self.labels = labels if self.labels is None else torch.cat([self.labels, labels])[-self.history:]
        if self.labels.min() == self.labels.max():  # one outcome only: nothing to separate yet
            return
        self.mean = self.features.mean(0)
        self.std = self.features.std(0, unbiased=False).clamp(min=1e-6)
        z = self._standardise(self.features)
        w = torch.zeros(z.shape[1]) if self.weight is None else self.weight.clone()
        b = self.bias.clone()
        for _ in range(self.steps):  # full-batch gradient descent on the regularised mean BCE
            err = torch.sigmoid(z @ w + b) - self.labels
            w -= self.lr * (z.T @ err / len(err) + self.l2 * w)
            b -= self.lr * err.mean()
        self.weight, self.bias = w, b

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "l2": self.l2, "steps": self.steps, "lr": self.lr,
                "features": self.features, "labels": self.labels, "weight": self.weight, "bias": self.bias,
                "mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__init__(state["history"], state["l2"], state["steps"], state["lr"])
        for key in ("features", "labels", "weight", "bias", "mean", "std"):
            setattr(self, key, state[key])
