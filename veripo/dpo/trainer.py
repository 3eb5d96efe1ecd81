"""The DPO stage: per-token log-probs of chosen and rejected responses (videos and all), any preference loss
from ``veripo.algos`` (or a weighted mix), optional NLL on the chosen response.

    L = sum_k w_k * l_k(pi, pi_ref; pair)  +  nll_coef * ( -mean_t log pi(chosen_t) )
The reference is the policy at the start of the stage: its log-probs are computed once in a forward-only
pass and cached (``out_dir/ref_logps.pt``), so training needs one model in memory. Reference-free losses
(SimPO) skip that pass. TGDPO's token guidance (log pi_guide - log pi_ref per token) is cached the same way.
SRPO's self-revision terms are computed with a revision prompt ("improve this response").
"""
from __future__ import annotations

import io
import logging
import time
from typing import Any

import torch

from veripo.algos.preference_losses import (combine_preference_losses, implicit_rewards, loss_needs_reference,
                                            preference_metrics)
from veripo.algos.preference_weighting import check_weighting, weighted_preference_losses
from veripo.data.schema import Sample
from veripo.dpo.config import DPOConfig
from veripo.dpo.pairs_data import is_heldout, load_pairs, preference_scores, readable_pairs
from veripo.errors import ConfigError, DataError
from veripo.io_utils import atomic_write_bytes
from veripo.prompt_batch import build_prompt_batch
from veripo.prompt_cache import PromptCache
from veripo.models.tokenizer import response_end_id
from veripo.records import PairRecord
from veripo.sequences import SequenceBatch, build_sequences, completion_logps
from veripo.train.distributed import shard
from veripo.train.metrics import progress
from veripo.train.policy_setup import model_device
from veripo.train.sampler import PromptSampler
from veripo.train.stage import TrainingStage
from veripo.video.cache import FrameCache

log = logging.getLogger(__name__)
REVISION_HINT = "\nA previous response to this question was:\n{response}\nWrite an improved response."


def revision_sample(sample: Sample, response: str) -> Sample:
    """The question with a previous response to improve (SRPO's self-revision prompt)."""
    import dataclasses

    return dataclasses.replace(sample, problem=sample.problem + REVISION_HINT.format(response=response))


class DPOTrainer(TrainingStage):
    name = "dpo"

    def __init__(self, cfg: DPOConfig, model=None, processor=None):
        super().__init__(cfg, model, processor)
        self.tok = self.tokenizer
        self.cache = FrameCache()
        self.prompts = PromptCache(self.processor, self.cache, cfg.video, max_bytes=cfg.prompt_cache_mb << 20)
        self._response_cache: dict[tuple[str, str], list[int]] = {}
        pairs = readable_pairs(load_pairs(cfg.pairs_file, self.errors, strict=cfg.strict), self.cache, cfg.video,
                               self.errors, strict=cfg.strict)
        if not pairs:
            raise DataError(f"{cfg.pairs_file}: no usable pairs ({len(self.errors)} bad rows)")
        self.train_pairs = [p for p in pairs if not is_heldout(p[0].pair_id, cfg.heldout_fraction)]
        self.heldout_pairs = [p for p in pairs if is_heldout(p[0].pair_id, cfg.heldout_fraction)]
        if not self.train_pairs:
            self.train_pairs, self.heldout_pairs = pairs, []
        names = cfg.loss.names
        self.loss_fn = combine_preference_losses(names, cfg.loss.weights)
        self.needs_ref = any(loss_needs_reference(n) for n in names)
        self.needs_guidance = "tgdpo" in names
        self.needs_revision = "srpo" in names
        check_weighting(names, cfg.loss.use_weighting, cfg.loss.ld_alpha)
        steps = cfg.run.steps or max(1, int(round(len(self.train_pairs) * cfg.epochs / cfg.batch_size)))
        self.sampler = PromptSampler(self.train_pairs, min(cfg.batch_size, len(self.train_pairs)), cfg.run.seed)
        # trained forwards go through train_engine.model (DDP / DeepSpeed wrapper); reference passes use self.model
        self.setup_optimisation(steps)
        self.ref: dict[str, dict[str, torch.Tensor]] = {}
        self._before: dict[str, float] = {}
        self._t0 = time.perf_counter()

    @property
    def steps(self) -> int:
        return self.total_steps

    def check_world(self, world_size: int) -> None:
        if self.cfg.batch_size % world_size:
            raise ConfigError(f"batch_size {self.cfg.batch_size} is not a multiple of the {world_size} processes")

    # ------------------------------------------------------------------------------ sequences
    def _encode(self, text: str) -> list[int]:
        """A response given as text: its tokens + one end token (``<|im_end|>``), as SFT's targets end."""
        return self.tok.encode(text, add_special_tokens=False) + [response_end_id(self.tok)]

    def _response_ids(self, pair: PairRecord, side: str) -> list[int]:
        """The rollout's own token ids when the pair carries them (no decode/re-encode), else the encoded text
        (encoded once per pair and side)."""
        ids = getattr(pair, f"{side}_ids", None)
        if ids:
            return list(ids)
        key = (pair.pair_id, side)
        if key not in self._response_cache:
            self._response_cache[key] = self._encode(getattr(pair, side))
        return self._response_cache[key]

    def _pair_batch(self, pairs: list[tuple[PairRecord, Sample]], revision: bool = False) -> SequenceBatch:
        """Rows 0..B-1 chosen, B..2B-1 rejected. With ``revision``: 4B rows of SRPO's conditional terms
        (w|l, l|l, l|w, w|w) on revision prompts."""
        B = len(pairs)
        if not revision:
            prompts = self.prompts.batch([p.pair_id for p, _ in pairs], [s for _, s in pairs])
            index = list(range(B)) * 2
            sides = ["chosen"] * B + ["rejected"] * B
        else:
            samples = [revision_sample(s, p.rejected) for p, s in pairs] + [revision_sample(s, p.chosen) for p, s in pairs]
            prompts = build_prompt_batch(self.processor, samples, self.cache, self.cfg.video)
            index = list(range(B)) + list(range(B)) + list(range(B, 2 * B)) + list(range(B, 2 * B))
            sides = ["chosen"] * B + ["rejected"] * B + ["rejected"] * B + ["chosen"] * B
        completions = [self._response_ids(pairs[k % B][0], side) for k, side in enumerate(sides)]
        batch = build_sequences(prompts, index, completions, self.tok.pad_token_id,
                                share_prompts=self.cfg.optim.share_prompts)
        device = model_device(self.model)
        batch.model_inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.model_inputs.items()}
        batch.completion_ids = batch.completion_ids.to(device)
        batch.completion_mask = batch.completion_mask.to(device)
        return batch

    def _logps(self, model, batch: SequenceBatch) -> torch.Tensor:
        logps, _ = completion_logps(model, batch, micro_batch_size=self.cfg.optim.micro_batch_size)
        return logps

    # ------------------------------------------------------------------------------ reference
    def _reference_pass(self) -> None:
        """Per-token reference log-probs of every pair (cached on disk next to the run)."""
        path = self.out / "ref_logps.pt"
        if path.exists():
            self.ref = torch.load(path, map_location="cpu", weights_only=False)
            if all(p.pair_id in self.ref for p, _ in self.train_pairs + self.heldout_pairs):
                return
        guide = None
        if self.needs_guidance:
            if not self.cfg.loss.guidance_model:
                raise ConfigError("tgdpo needs loss.guidance_model: a checkpoint whose token log-ratio guides DPO")
            from veripo.models import load_policy

            guide, _ = load_policy(self.cfg.loss.guidance_model, device=str(model_device(self.model)))
            guide.eval()
        all_pairs = self.train_pairs + self.heldout_pairs
        bar = progress(len(all_pairs), "dpo reference", unit="pair")
        self.model.eval()
        bs = max(1, self.cfg.batch_size)
        with torch.no_grad():
            for start in range(0, len(all_pairs), bs):
                chunk = all_pairs[start: start + bs]
                B = len(chunk)
                batch = self._pair_batch(chunk)
                ref = self._logps(self.model, batch).cpu()
                g = self._logps(guide, batch).cpu() - ref if guide is not None else None
                rev = self._logps(self.model, self._pair_batch(chunk, revision=True)).cpu() if self.needs_revision else None
                for i, (pair, _) in enumerate(chunk):
                    entry = {"chosen": ref[i], "rejected": ref[B + i]}
                    if g is not None:
                        entry["guide_chosen"], entry["guide_rejected"] = g[i], g[B + i]
                    if rev is not None:
                        entry["revision"] = torch.stack([rev[k * B + i].sum() for k in range(4)])
                    self.ref[pair.pair_id] = entry
                bar.update(B)
        bar.close()
        self.model.train()
        if self.train_engine.is_main:
            buf = io.BytesIO()
            torch.save(self.ref, buf)
            atomic_write_bytes(path, buf.getvalue())
        self.train_engine.barrier()

    def _ref_tensor(self, pairs, key: str, width: int) -> torch.Tensor:
        out = torch.zeros(len(pairs), width)
        for i, (p, _) in enumerate(pairs):
            v = self.ref[p.pair_id][key]
            out[i, : min(width, len(v))] = v[:width]
        return out.to(model_device(self.model))

    # ------------------------------------------------------------------------------ loss
    def pair_losses(self, pairs: list[tuple[PairRecord, Sample]]) -> tuple[torch.Tensor, dict[str, float]]:
        B = len(pairs)
        batch = self._pair_batch(pairs)
        logps, log_sum_sq = completion_logps(self.train_engine.model, batch,
                                             micro_batch_size=self.cfg.optim.micro_batch_size,
                                             with_log_sum_sq=self.cfg.loss.use_weighting)  # WPO's weights
        mask = batch.completion_mask
        c_lp, r_lp, c_m, r_m = logps[:B], logps[B:], mask[:B], mask[B:]
        width = logps.shape[1]
        hp: dict[str, Any] = {"beta": self.cfg.loss.beta, **self.cfg.loss.hparams}
        ref_c = ref_r = None
        if self.needs_ref:
            ref_c, ref_r = self._ref_tensor(pairs, "chosen", width), self._ref_tensor(pairs, "rejected", width)
        scores = torch.tensor([preference_scores(p) for p, _ in pairs], device=logps.device)
        hp.setdefault("chosen_scores", scores[:, 0])  # the verifier's judgement of each response (smpo, brain)
        hp.setdefault("rejected_scores", scores[:, 1])
        if self.needs_guidance:
            hp["chosen_token_guidance"] = self._ref_tensor(pairs, "guide_chosen", width)
            hp["rejected_token_guidance"] = self._ref_tensor(pairs, "guide_rejected", width)
        if self.needs_revision:
            rev_batch = self._pair_batch(pairs, revision=True)
            rev = (self._logps(self.train_engine.model, rev_batch) * rev_batch.completion_mask).sum(-1).view(4, B)
            rev_ref = torch.stack([self.ref[p.pair_id]["revision"] for p, _ in pairs], 1).to(rev.device)
            ratio = rev - rev_ref
            hp.update(logratio_chosen_given_rejected=ratio[0], logratio_rejected_given_rejected=ratio[1],
                      logratio_rejected_given_chosen=ratio[2], logratio_chosen_given_chosen=ratio[3])
        losses = weighted_preference_losses(self.loss_fn, c_lp, r_lp, c_m, r_m, ref_c, ref_r,
                                            ld_alpha=self.cfg.loss.ld_alpha, log_sum_sq=log_sum_sq, **hp)
        loss = losses.mean()
        if self.cfg.loss.nll_coef:
            nll = -((c_lp * c_m).sum(-1) / c_m.sum(-1).clamp(min=1)).mean()
            loss = loss + self.cfg.loss.nll_coef * nll
        with torch.no_grad():
            cr, rr = implicit_rewards(c_lp.detach(), r_lp.detach(), c_m, r_m, ref_c, ref_r, beta=self.cfg.loss.beta)
            metrics = preference_metrics(cr, rr)
            metrics.update({"loss": float(loss.detach()),
                            "logps/chosen": float((c_lp * c_m).sum(-1).mean()),
                            "logps/rejected": float((r_lp * r_m).sum(-1).mean())})
        return loss, metrics

    @torch.no_grad()
    def heldout_margin(self) -> dict[str, float]:
        """Mean chosen-minus-rejected log-ratio margin (beta * implicit reward) on held-out pairs."""
        pairs = self.heldout_pairs
        if not pairs:
            return {}
        self.model.eval()
        margins, gaps = [], []
        for start in range(0, len(pairs), self.cfg.batch_size):
            chunk = pairs[start: start + self.cfg.batch_size]
            B = len(chunk)
            batch = self._pair_batch(chunk)
            logps = self._logps(self.model, batch)
            m = batch.completion_mask
            width = logps.shape[1]
            ref_c = self._ref_tensor(chunk, "chosen", width) if self.ref else None
            ref_r = self._ref_tensor(chunk, "rejected", width) if self.ref else None
            cr, rr = implicit_rewards(logps[:B], logps[B:], m[:B], m[B:], ref_c, ref_r, beta=self.cfg.loss.beta)
            margins.extend((cr - rr).tolist())
            seq_c = (logps[:B] * m[:B]).sum(-1)
            seq_r = (logps[B:] * m[B:]).sum(-1)
            gaps.extend((seq_c - seq_r).tolist())
        self.model.train()
        return {"heldout/margin": sum(margins) / len(margins),
                "heldout/logp_gap": sum(gaps) / len(gaps), "heldout/pairs": float(len(pairs))}

    # ------------------------------------------------------------------------------ stage hooks
    def before_loop(self, start: int, resume: bool) -> None:
        if self.needs_ref or self.needs_guidance or self.needs_revision:
            self._reference_pass()
        self._before = self.heldout_margin() if start == 0 else {}
        self._t0 = time.perf_counter()

    def step(self, step: int) -> dict[str, float]:
        te = self.train_engine
        pairs = shard(self.sampler.batch(step), te.rank, te.world_size, require_even=False)
        self.model.train()
        mbs = max(1, self.cfg.optim.micro_batch_size // 2)  # each pair is two sequences
        metrics: dict[str, float] = {}
        for s in range(0, len(pairs), mbs):
            part = pairs[s: s + mbs]
            with te.accumulating(last=s + mbs >= len(pairs)):
                loss, m = self.pair_losses(part)
                te.backward(loss * len(part) / len(pairs))
            for k, v in m.items():
                metrics[k] = metrics.get(k, 0.0) + v * len(part) / len(pairs)
        metrics["grad_norm"] = te.step(self.cfg.optim.grad_clip)
        return metrics

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{metrics['loss']:.3f}", "margin": f"{metrics['rewards/margins']:.3f}"}

    def summary(self, history: list[dict[str, float]], steps_done: int) -> dict[str, Any]:
        after = self.heldout_margin()
        return {"steps": self.steps, "pairs_train": len(self.train_pairs), "pairs_heldout": len(self.heldout_pairs),
                "bad_rows": len(self.errors), "final_policy": str(self.out / "final"),
                "seconds": time.perf_counter() - self._t0, "losses": self.cfg.loss.names,
                "processes": self.train_engine.world_size,
                **{f"before/{k}": v for k, v in self._before.items()}, **{f"after/{k}": v for k, v in after.items()}}
