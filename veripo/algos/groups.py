"""Vectorised per-group statistics over a flat batch: rows i = 0..N-1 belong to group ``group_ids[i]``.

Groups are the G rollouts of one prompt. Every function here works on any id values (not only 0..P-1),
handles groups of size 1, and ignores NaN entries (a reward that could not be computed) in the statistics.
Outputs are broadcast back to rows ([N]) unless the name says ``per_group``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Groups:
    """``inverse[i]`` is the dense index (0..num_groups-1) of row i's group; ``sizes`` counts rows per group."""

    inverse: Tensor
    num_groups: int
    sizes: Tensor

    @staticmethod
    def of(group_ids: Tensor) -> "Groups":
        if group_ids.dim() != 1:
            raise ValueError(f"group_ids must be 1-D [N], got shape {tuple(group_ids.shape)}")
        uniq, inverse = torch.unique(group_ids, return_inverse=True)
        sizes = torch.bincount(inverse, minlength=len(uniq))
        return Groups(inverse=inverse, num_groups=len(uniq), sizes=sizes)

    def sum_per_group(self, x: Tensor) -> Tensor:
        out = torch.zeros(self.num_groups, dtype=x.dtype, device=x.device)
        return out.index_add(0, self.inverse, x)

    def count_valid(self, valid: Tensor) -> Tensor:
        """Per row: how many valid (non-NaN) rows its group has."""
        return self.sum_per_group(valid.to(torch.float64))[self.inverse]

    def mean(self, x: Tensor) -> Tensor:
        """Per row: the NaN-ignoring mean of its group (0 for a group with no valid rows)."""
        valid = ~torch.isnan(x)
        total = self.sum_per_group(torch.where(valid, x, torch.zeros_like(x)))[self.inverse]
        count = self.count_valid(valid).to(x.dtype)
        return total / count.clamp(min=1)

    def std(self, x: Tensor, unbiased: bool = True) -> Tensor:
        """Per row: the NaN-ignoring std of its group. Unbiased (n-1) by default; 0 where undefined (n<=1)."""
        valid = ~torch.isnan(x)
        mean = self.mean(x)
        sq = torch.where(valid, (x - mean) ** 2, torch.zeros_like(x))
        ss = self.sum_per_group(sq)[self.inverse]
        count = self.count_valid(valid).to(x.dtype)
        denom = count - 1 if unbiased else count
        return torch.where(denom > 0, ss / denom.clamp(min=1), torch.zeros_like(ss)).sqrt()

    def sorted_order(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Row order sorted by (group, value, row index) and each sorted position's rank inside its group.

        Two stable sorts: first by value (ties keep row order), then by group. So within a group the order is
        ``argsort(x[group], stable=True)`` -- the deterministic pivot choice of spec A2.
        """
        by_value = torch.sort(x, stable=True).indices
        by_group = torch.sort(self.inverse[by_value], stable=True).indices
        order = by_value[by_group]
        starts = torch.cumsum(self.sizes, 0) - self.sizes
        rank = torch.arange(len(x), device=x.device) - starts[self.inverse[order]]
        return order, rank

    def lower_median(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per group: the lower median (``torch.median`` semantics) and the row index of that median.

        For even group size the LOWER middle value is returned. Ties: the row that comes first among equals.
        Returns (median per row [N], pivot row per group [num_groups]).
        """
        order, rank = self.sorted_order(x)
        middle = (self.sizes[self.inverse[order]] - 1) // 2
        at_middle = rank == middle
        pivot_rows = torch.empty(self.num_groups, dtype=torch.long, device=x.device)
        pivot_rows[self.inverse[order[at_middle]]] = order[at_middle]
        return x[pivot_rows][self.inverse], pivot_rows
