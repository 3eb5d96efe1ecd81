"""Prompt + completion sequences for training forwards, and their per-token log-probs.

Both stages score completions the same way: GRPO (policy/old/ref log-probs of G rollouts per prompt) and
DPO (chosen and rejected responses of each pair). The prompt batch is processed once; each sequence picks
its prompt by index, and the visual tensors are gathered per sequence (a video's patches are the
``prod(video_grid_thw)`` rows of ``pixel_values_videos`` that belong to it).

    logp_t = log softmax(logits_{t-1} / temperature)[token_t],  for the completion tokens only
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from veripo.prompt_batch import PromptBatch
from veripo.prompt_sharing import can_share_prompts, full_positions, shared_prompt_logits


#: the per-token model inputs of a batch (one row per sequence, padded); the visual tensors are per video / image
TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")


@dataclasses.dataclass
class SequenceBatch:
    model_inputs: dict[str, Any]      # input_ids [N, P+C], attention_mask, mm_token_type_ids, visual tensors
    completion_ids: torch.Tensor      # [N, C] right-padded
    completion_mask: torch.Tensor     # [N, C] float, 1 on real completion tokens
    prompts: PromptBatch | None = None        # set when the forwards share each prompt (veripo.prompt_sharing)
    prompt_index: torch.Tensor | None = None  # [N] the prompt of each row, in ``prompts``

    def __len__(self) -> int:
        return int(self.completion_ids.shape[0])

    def slice(self, start: int, stop: int) -> "SequenceBatch":
        """Rows [start, stop) with their visual tensors (one micro-batch)."""
        if start == 0 and stop >= len(self):
            return self
        return SequenceBatch(model_inputs=_slice_visual(self.model_inputs, start, stop),
                             completion_ids=self.completion_ids[start:stop],
                             completion_mask=self.completion_mask[start:stop], prompts=self.prompts,
                             prompt_index=None if self.prompt_index is None else self.prompt_index[start:stop])


def _split_visual(values: torch.Tensor, grid_thw: torch.Tensor) -> list[torch.Tensor]:
    sizes = grid_thw.prod(-1).tolist()
    return list(torch.split(values, [int(s) for s in sizes], dim=0))


def select_prompts(prompts: PromptBatch, index: Sequence[int]) -> dict[str, Any]:
    """The prompt batch's model inputs for prompts ``index`` (repeats allowed), visual tensors included."""
    inp = prompts.inputs
    idx = torch.as_tensor(list(index), dtype=torch.long)
    out: dict[str, Any] = {k: inp[k][idx] for k in TOKEN_KEYS if k in inp}
    for kind, per_prompt, values_key, grid_key, extra_keys in (
        ("video", prompts.videos_per_prompt, "pixel_values_videos", "video_grid_thw", ("second_per_grid_ts",)),
        ("image", prompts.images_per_prompt, "pixel_values", "image_grid_thw", ()),
    ):
        if values_key not in inp:
            continue
        starts = [sum(per_prompt[:i]) for i in range(len(per_prompt))]
        pieces = _split_visual(inp[values_key], inp[grid_key])
        chosen = [v for i in idx.tolist() for v in range(starts[i], starts[i] + per_prompt[i])]
        if not chosen:
            continue
        out[values_key] = torch.cat([pieces[v] for v in chosen], 0)
        out[grid_key] = inp[grid_key][chosen]
        for key in extra_keys:
            if key in inp:
                out[key] = torch.as_tensor(inp[key])[chosen]
    return out


def build_sequences(prompts: PromptBatch, prompt_index: Sequence[int], completions: Sequence[Sequence[int]],
                    pad_token_id: int, share_prompts: bool = False) -> SequenceBatch:
    """Append each completion (token ids) to its prompt; completions are right-padded. ``share_prompts``: the
    forwards over the batch run each distinct prompt of a micro-batch once (``veripo.prompt_sharing``)."""
    if len(prompt_index) != len(completions):
        raise ValueError(f"{len(prompt_index)} prompt indices for {len(completions)} completions")
    inputs = select_prompts(prompts, prompt_index)
    width = max(1, max((len(c) for c in completions), default=1))
    ids = torch.full((len(completions), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(completions), width), dtype=torch.float32)
    for i, c in enumerate(completions):
        ids[i, : len(c)] = torch.as_tensor(list(c), dtype=torch.long)
        mask[i, : len(c)] = 1.0
    inputs["input_ids"] = torch.cat([inputs["input_ids"], ids], 1)
    inputs["attention_mask"] = torch.cat([inputs["attention_mask"], mask.long()], 1)
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(ids)], 1)
    return SequenceBatch(model_inputs=inputs, completion_ids=ids, completion_mask=mask,
                         prompts=prompts if share_prompts else None,
                         prompt_index=torch.as_tensor(list(prompt_index), dtype=torch.long) if share_prompts else None)


def extend_prompts(inputs: dict[str, Any], prefixes: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, Any]:
    """Generation inputs for partial rollouts: each (left-padded) prompt row of ``inputs`` followed by the
    tokens of ``prefixes[row]``, left-padded again so that every row ends at its last real token (what
    ``generate`` continues from). Visual tensors are unchanged; ``mm_token_type_ids`` is 0 (text) on the prefix."""
    if len(prefixes) != inputs["input_ids"].shape[0]:
        raise ValueError(f"{len(prefixes)} prefixes for {inputs['input_ids'].shape[0]} prompt rows")
    keys = [k for k in ("input_ids", "mm_token_type_ids") if k in inputs]
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for r, prefix in enumerate(prefixes):
        real = inputs["attention_mask"][r].bool()
        tail = torch.as_tensor(list(prefix), dtype=torch.long)
        rows["input_ids"].append(torch.cat([inputs["input_ids"][r][real], tail]))
        if "mm_token_type_ids" in rows:
            rows["mm_token_type_ids"].append(torch.cat([inputs["mm_token_type_ids"][r][real], torch.zeros_like(tail)]))
    width = max(len(x) for x in rows["input_ids"])
    out = dict(inputs)
    for k in keys:
        fill = pad_token_id if k == "input_ids" else 0
        out[k] = torch.stack([torch.cat([torch.full((width - len(x),), fill, dtype=torch.long), x])
                              for x in rows[k]])
    out["attention_mask"] = torch.stack([torch.cat([torch.zeros(width - len(x), dtype=torch.long),
                                                    torch.ones(len(x), dtype=torch.long)]) for x in rows["input_ids"]])
    return out


def _slice_visual(inputs: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """Rows [start, stop) of a sequence batch, with their visual tensors (one chunk of a micro-batch loop)."""
    out = {k: v[start:stop] for k, v in inputs.items()
           if k in TOKEN_KEYS}
    for values_key, grid_key, extra in (("pixel_values_videos", "video_grid_thw", "second_per_grid_ts"),
                                        ("pixel_values", "image_grid_thw", None)):
        if values_key not in inputs:
            continue
        mm = inputs["mm_token_type_ids"] if "mm_token_type_ids" in inputs else None
        if mm is None:
            raise ValueError("micro-batching visual inputs needs mm_token_type_ids")
        # visual items per row, in order: count the vision blocks of each row
        type_id = 2 if values_key == "pixel_values_videos" else 1
        per_row = [_count_blocks(mm[r], type_id) for r in range(mm.shape[0])]
        first = sum(per_row[:start])
        last = first + sum(per_row[start:stop])
        if last == first:
            continue
        pieces = _split_visual(inputs[values_key], inputs[grid_key])
        out[values_key] = torch.cat(pieces[first:last], 0)
        out[grid_key] = inputs[grid_key][first:last]
        if extra and extra in inputs:
            out[extra] = inputs[extra][first:last]
    return out


def _count_blocks(row: torch.Tensor, type_id: int) -> int:
    hits = (row == type_id).long()
    return int(((hits[1:] - hits[:-1]) == 1).sum() + hits[0])


def _completion_forwards(model, batch: SequenceBatch, temperature: float, micro_batch_size: int | None,
                         hidden: bool = False):
    """Per micro-batch: (its rows, their completion ids and mask, the log-softmax over the vocabulary at each
    completion position [n, C, V], the model output). Position t's logits are those of the token before completion
    token t. A batch built with ``share_prompts`` runs each distinct prompt of a micro-batch once."""
    if not hidden and batch.prompts is not None and can_share_prompts(model, batch.model_inputs):
        yield from _shared_prompt_forwards(model, batch, temperature, micro_batch_size)
        return
    n = len(batch)
    step = micro_batch_size or n
    width = batch.completion_ids.shape[1]
    for start in range(0, n, step):
        part = batch.slice(start, min(n, start + step))
        extra = {"output_hidden_states": True} if hidden else {}
        out = model(**part.model_inputs, use_cache=False, logits_to_keep=width + 1, **extra)
        yield (slice(start, start + len(part)), part.completion_ids, part.completion_mask,
               _log_softmax(out.logits[:, :-1], temperature), out)


def _shared_prompt_forwards(model, batch: SequenceBatch, temperature: float, micro_batch_size: int | None):
    """``_completion_forwards`` with rows ordered by prompt (a stable sort: GRPO's groups are already together,
    DPO's chosen and rejected rows of a pair are brought together) and each micro-batch's prompts run once."""
    n = len(batch)
    step = micro_batch_size or n
    positions = full_positions(model, batch.model_inputs)
    order = torch.sort(batch.prompt_index, stable=True).indices
    device = batch.completion_ids.device
    for start in range(0, n, step):
        rows = order[start:start + step]
        used, local = torch.unique(batch.prompt_index[rows], return_inverse=True)
        rows_on = rows.to(device)
        ids, mask = batch.completion_ids[rows_on], batch.completion_mask[rows_on]
        prompt_inputs = {k: (v.to(device) if torch.is_tensor(v) else v)
                         for k, v in select_prompts(batch.prompts, used.tolist()).items()}
        logits = shared_prompt_logits(model, prompt_inputs, local.to(device), ids,
                                      batch.model_inputs["attention_mask"][rows_on],
                                      positions[..., rows_on, :])
        yield rows_on, ids, mask, _log_softmax(logits, temperature), None


def _log_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return F.log_softmax(logits, -1)


def _sampled(log_probs: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return log_probs.gather(-1, ids.unsqueeze(-1)).squeeze(-1) * mask


def _in_row_order(pieces: list[tuple[Any, torch.Tensor]]) -> torch.Tensor:
    """The per-row tensors of each micro-batch (rows: a slice or an index tensor) put back in the batch's order."""
    if all(isinstance(rows, slice) for rows, _ in pieces):
        return torch.cat([t for _, t in pieces], 0)
    order = torch.cat([rows for rows, _ in pieces])
    return torch.cat([t for _, t in pieces], 0)[torch.argsort(order)]


def completion_logps(model, batch: SequenceBatch, temperature: float = 1.0, micro_batch_size: int | None = None,
                     with_entropy: bool = False, with_log_sum_sq: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs [N, C] of the completion tokens (0 on padding), and a per-token statistic of the whole
    distribution (no gradient) when asked: the entropy (``with_entropy``) or ``log sum_v p_v^2``
    (``with_log_sum_sq``, WPO's weights); otherwise None.

    Gradients flow when called outside ``torch.no_grad``. ``micro_batch_size`` bounds peak memory.
    """
    if with_entropy and with_log_sum_sq:
        raise ValueError("completion_logps: ask for the entropy or log sum p^2, not both")
    logps, stats = [], []  # stats: the entropy or log sum p^2, whichever was asked for
    for rows, ids, mask, log_probs, _ in _completion_forwards(model, batch, temperature, micro_batch_size):
        logps.append((rows, _sampled(log_probs, ids, mask)))
        if with_entropy:
            stats.append((rows, -(log_probs.exp() * log_probs).sum(-1).detach()))
        elif with_log_sum_sq:
            stats.append((rows, torch.logsumexp(2 * log_probs.detach(), -1)))
    return _in_row_order(logps), (_in_row_order(stats) if stats else None)


def completion_logps_and_states(model, batch: SequenceBatch, temperature: float = 1.0,
                                micro_batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``completion_logps`` and, from the same forward, the last-layer hidden state at the position that predicts
    each completion token [N, C, H] (detached; what value heads read: the state (x, y_<t) of token t)."""
    logps, states = [], []
    width = batch.completion_ids.shape[1]
    for _, ids, mask, log_probs, out in _completion_forwards(model, batch, temperature, micro_batch_size, hidden=True):
        logps.append(_sampled(log_probs, ids, mask))
        states.append(out.hidden_states[-1][:, -width - 1:-1].detach())
    return torch.cat(logps, 0), torch.cat(states, 0)
