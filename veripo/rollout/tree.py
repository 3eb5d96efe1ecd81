"""Tree rollouts with shared prefixes (BranchGRPO, Li et al. 2025, arXiv 2509.06040, transferred to LLMs as in
the TreeRL / TreePO family; algorithms.md A9 "LLM transfer").

Growth (``grow_trees``), level by level, for ``branches = (b_1, ..., b_L)`` and ``segment_tokens = S``:

    the root (the prompt) gets b_1 children, each sampling a segment of S tokens;
    every unfinished node of level l gets b_{l+1} children, each continuing it by S more tokens;
    the last level's children run to the end of the budget (``max_new_tokens`` in all).

A node whose segment stops (EOS or ``</answer>``) is a leaf early. Leaves are the group's rollouts
(``prod(branches)`` when none stops early); a shared prefix is DECODED once (its continuations re-read it
in one parallel prefill), so a tree decodes ``b_1 S + b_1 b_2 S + ... `` tokens instead of ``prod(b) T``.

Training (``tree_layout`` + the ``branch`` estimator): nodes are the root, every internal node and every leaf.
``V(leaf) = reward``, ``V(node) = mean of its leaves``, advantages are normalised per (tree, depth), and the
tokens of a node's segment carry that node's advantage. Each segment is trained ONCE: in the first leaf (in
group order) that passes through it; the other leaves' copies of the shared tokens are masked out. Flat
rollouts (no tree) are one-segment children of a virtual root, for which ``branch`` reduces to GRPO with the
unbiased std.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import torch

from veripo.errors import ConfigError
from veripo.rollout.partial import join, require_partial, with_budget
from veripo.generation.types import Completion, SamplingParams


@dataclasses.dataclass(frozen=True)
class TreeShape:
    branches: tuple[int, ...]
    segment_tokens: int

    @property
    def leaves(self) -> int:
        return math.prod(self.branches)

    def check(self, max_new_tokens: int, group_size: int | None = None) -> None:
        if not self.branches or any(b < 1 for b in self.branches) or self.segment_tokens < 1:
            raise ConfigError(f"rollout.tree_branches must be positive integers and rollout.tree_segment_tokens >= 1 "
                             f"(got {list(self.branches)}, {self.segment_tokens})")
        if self.segment_tokens * (len(self.branches) - 1) >= max_new_tokens:
            raise ConfigError(f"rollout.tree_segment_tokens={self.segment_tokens} x {len(self.branches) - 1} split "
                             f"levels leaves no room for the last segment in rollout.max_new_tokens={max_new_tokens}")
        if group_size is not None and self.leaves != group_size:
            raise ConfigError(f"rollout.tree_branches {list(self.branches)} give {self.leaves} leaves per prompt, but "
                             f"rollout.group_size={group_size}: make the product equal the group size")


@dataclasses.dataclass
class _Node:
    prompt: int
    head: Completion
    path: list[int]
    cuts: list[int]


def grow_trees(engine: Any, samples: Sequence[Any], shape: TreeShape, params: SamplingParams,
               batch: Any = None) -> list[list[Completion]]:
    """Grow one tree per sample (see the module doc); returns each tree's leaves as completions carrying
    ``tree = {"path", "cuts"}``, in depth-first order of creation. ``batch``: ``engine.partial_batch(samples)``
    if the caller has it already."""
    require_partial(engine, "tree rollouts (rollout.tree_branches)")
    shape.check(params.max_new_tokens)
    batch = engine.partial_batch(samples) if batch is None else batch
    empty = Completion(text="", token_ids=[], logps=[], finish_reason="length")
    frontier = [_Node(i, empty, [], []) for i in range(len(samples))]
    next_id = [1] * len(samples)
    leaves: list[list[_Node]] = [[] for _ in samples]
    for level, width in enumerate(shape.branches):
        last = level == len(shape.branches) - 1
        used = level * shape.segment_tokens
        budget = params.max_new_tokens - used if last else shape.segment_tokens
        outs = engine.continue_from(batch, [n.prompt for n in frontier], [n.head.token_ids for n in frontier],
                                    width, with_budget(params, budget))
        grown: list[_Node] = []
        for node, kids in zip(frontier, outs):
            for tail in kids:
                nid = next_id[node.prompt]
                next_id[node.prompt] += 1
                head = join(engine.tokenizer, node.head, tail)
                child = _Node(node.prompt, head, node.path + [nid], node.cuts + [len(head.token_ids)])
                if last or tail.finish_reason == "stop":
                    leaves[node.prompt].append(child)
                else:
                    grown.append(child)
        frontier = grown
        if not frontier:
            break
    out = []
    for group in leaves:
        group.sort(key=lambda n: n.path)
        out.append([dataclasses.replace(n.head, tree={"path": n.path, "cuts": n.cuts}) for n in group])
    return out


@dataclasses.dataclass
class TreeLayout:
    """Node tensors for the ``branch`` estimator over ``M`` leaf rows.

    parent_ids [N]      parent node (-1 for roots)           group_ids [N]  tree (prompt) of each node
    leaf_node [M]       node of each leaf row                token_node_ids [M, T]  node of each trained token
    edge_logps [N]      sampling log-prob of each node's segment (for ``branch``'s probability-weighted values)
    """

    parent_ids: torch.Tensor
    group_ids: torch.Tensor
    leaf_node: torch.Tensor
    token_node_ids: torch.Tensor
    edge_logps: torch.Tensor

    def node_rewards(self, leaf_rewards: torch.Tensor) -> torch.Tensor:
        """Leaf rewards ([M] or [M, K]) placed on their nodes (internal nodes 0: ``branch`` fuses them)."""
        out = torch.zeros((len(self.parent_ids), *leaf_rewards.shape[1:]), dtype=leaf_rewards.dtype)
        out[self.leaf_node] = leaf_rewards
        return out

    @property
    def train_mask(self) -> torch.Tensor:
        """[M, T] float: 1 on the tokens each row trains (a shared segment only in its first leaf)."""
        return (self.token_node_ids >= 0).float()


def _shape_of(c: Completion, j: int) -> tuple[list[int], list[int]]:
    if c.tree:
        return list(c.tree["path"]), list(c.tree["cuts"])
    return [j + 1], [len(c.token_ids)]


def tree_layout(groups: Sequence[Sequence[Completion]], width: int) -> TreeLayout:
    """Nodes, parents and token ownership of ``groups`` (one tree per group; flat rollouts are one-segment
    children of a virtual root). ``width`` is the completion width of the training batch."""
    parents: list[int] = []
    group_of: list[int] = []
    edge: list[float] = []
    leaf_node: list[int] = []
    rows = [c for g in groups for c in g]
    tokens = torch.full((len(rows), max(1, width)), -1, dtype=torch.long)
    m = 0
    for g, comps in enumerate(groups):
        index = {0: len(parents)}
        parents.append(-1)
        group_of.append(g)
        edge.append(0.0)
        for j, c in enumerate(comps):
            path, cuts = _shape_of(c, j)
            if len(path) != len(cuts) or cuts != sorted(cuts) or (cuts and cuts[-1] != len(c.token_ids)):
                raise ValueError(f"rollout {j} of group {g}: tree path {path} and cuts {cuts} do not fit its "
                                 f"{len(c.token_ids)} tokens")
            for k, nid in enumerate(path):
                start = cuts[k - 1] if k else 0
                if nid not in index:
                    index[nid] = len(parents)
                    parents.append(index[path[k - 1]] if k else index[0])
                    group_of.append(g)
                    edge.append(float(sum(c.logps[start: cuts[k]])))
                    tokens[m, start: cuts[k]] = index[nid]
            leaf_node.append(index[path[-1]])
            m += 1
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return TreeLayout(as_long(parents), as_long(group_of), as_long(leaf_node), tokens,
                      torch.tensor(edge, dtype=torch.float32))
