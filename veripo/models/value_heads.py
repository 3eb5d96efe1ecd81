"""Value heads on the policy's last hidden states, for the value-based estimators ``ppo_gae`` / ``pdppo``.

    heads = ValueHeads(hidden_size=model.config.text_config.hidden_size, num_heads=2)
    out = model(**inputs, output_hidden_states=True)
    values = heads(out.hidden_states[-1][:, -T - 1:-1])        # [N, T, 2]: V(x, y_<t) for each completion token
    save_value_heads(heads, run_dir / "value_heads.pt");  heads = load_value_heads(run_dir / "value_heads.pt")

Use the hidden state at the position whose logits predict completion token t: that is the state (x, y_<t) the
value is of. Each head is ``Linear(hidden, 1)``, kept in float32 whatever the policy's dtype (the hidden states are
cast up), and the heads are initialised independently (nn.Linear's default init, zero bias) so that their minimum
is not their mean. ``detach_hidden=True`` (default) keeps the value loss from moving the policy's trunk (a
separate critic on shared features); False trains the trunk with it, as a shared actor-critic.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from veripo.errors import VeripoError

FILE_NAME = "value_heads.pt"
_FORMAT = "veripo.value_heads/1"


class ValueHeadsError(VeripoError):
    """A value-heads file is missing, of another format, or does not fit the policy (the message names it)."""


class ValueHeads(nn.Module):
    """``num_heads`` independent ``Linear(hidden_size, 1)`` value heads; forward: [..., H] -> [..., num_heads]."""

    def __init__(self, hidden_size: int, num_heads: int = 2, detach_hidden: bool = True) -> None:
        super().__init__()
        if hidden_size < 1 or num_heads < 1:
            raise ValueError(f"hidden_size and num_heads must be >= 1, got {hidden_size} and {num_heads}")
        self.hidden_size, self.num_heads, self.detach_hidden = hidden_size, num_heads, detach_hidden
        self.heads = nn.ModuleList(nn.Linear(hidden_size, 1) for _ in range(num_heads))
        for head in self.heads:
            nn.init.zeros_(head.bias)

    def forward(self, hidden_states: Tensor) -> Tensor:
        if hidden_states.shape[-1] != self.hidden_size:
            raise ValueError(f"value heads expect hidden size {self.hidden_size}, got {hidden_states.shape[-1]}")
        h = hidden_states.detach() if self.detach_hidden else hidden_states
        h = h.to(self.heads[0].weight.dtype)
        return torch.cat([head(h) for head in self.heads], dim=-1)

    def config(self) -> dict:
        return {"hidden_size": self.hidden_size, "num_heads": self.num_heads, "detach_hidden": self.detach_hidden}


def save_value_heads(heads: ValueHeads, path: str | Path) -> Path:
    """Write the heads (config + state_dict) to ``path`` (a file, or a directory -> ``dir/value_heads.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": _FORMAT, "config": heads.config(), "state_dict": heads.state_dict()}, tmp)
    tmp.replace(path)  # a crash mid-write never leaves a half file under the real name
    return path


def load_value_heads(path: str | Path, hidden_size: int | None = None, map_location: str = "cpu") -> ValueHeads:
    """Read heads written by ``save_value_heads``; ``hidden_size`` (the policy's), if given, must match."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise ValueHeadsError(f"{path}: no value-heads file (written by save_value_heads next to the policy)")
    blob = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise ValueHeadsError(f"{path}: not a veripo value-heads file (expected format {_FORMAT!r})")
    cfg = blob["config"]
    if hidden_size is not None and cfg["hidden_size"] != hidden_size:
        raise ValueHeadsError(f"{path}: value heads were trained for hidden size {cfg['hidden_size']}, "
                              f"the policy has {hidden_size}")
    heads = ValueHeads(**cfg)
    heads.load_state_dict(blob["state_dict"])
    return heads
