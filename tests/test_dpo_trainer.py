"""The DPO stage on the tiny model: pairs with real videos, every preference loss, margins, resume."""
from __future__ import annotations

import json
import math
import random

import pytest
import torch

from veripo.algos import list_preference_losses
from veripo.config import load_config
from veripo.data.schema import load_samples
from veripo.data.templates import correct_response, inconsistent_response, wrong_response
from veripo.dpo.config import DPOConfig
from veripo.dpo.trainer import DPOTrainer
from veripo.io_utils import read_jsonl
from veripo.records import PairRecord

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO, synth_task, task_kit, warm_policy  # noqa: F401


def write_pairs(task, dest, n=None):
    """chosen: the correct templated reasoning; rejected: a wrong or inconsistent one (as the verifier makes)."""
    rng = random.Random(0)
    rows = load_samples(task / "train.jsonl")[:n]
    pairs = []
    for i, s in enumerate(rows):
        rejected = (wrong_response if i % 2 else inconsistent_response)(s, rng)
        pairs.append(PairRecord(pair_id=f"p{i:03d}", prompt_id=s.problem_id, kind="quality", sample=s,
                                prompt=s.problem, chosen=correct_response(s), rejected=rejected,
                                provenance={"reason": "test"}).to_dict())
    dest.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return dest


def dpo_cfg(model, pairs, out, *extra):
    return load_config(DPOConfig, None, [f"model.path={model}", "model.freeze_vision=false", f"pairs_file={pairs}",
                                         f"out_dir={out}", "tensorboard=false", *VIDEO, *extra])


def test_dpo_raises_the_heldout_margin(warm_policy, synth_task, tmp_path):
    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl")
    cfg = dpo_cfg(warm_policy, pairs, tmp_path / "run", "optim.lr=5e-4", "batch_size=8", "epochs=3",
                  "heldout_fraction=0.25")
    summary = DPOTrainer(cfg).train()
    assert summary["pairs_heldout"] > 0
    assert summary["before/heldout/margin"] == pytest.approx(0.0, abs=1e-4)  # the reference is the start policy
    assert summary["after/heldout/margin"] > 0.05, summary
    assert summary["after/heldout/logp_gap"] > summary["before/heldout/logp_gap"]
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert {"loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"} <= set(metrics[0])
    assert (tmp_path / "run" / "ref_logps.pt").exists()


@pytest.mark.parametrize("name", list_preference_losses())
def test_every_preference_loss_trains(name, task_kit, synth_task, tmp_path):
    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=4)
    extra = [f"loss.names=[{name}]", "batch_size=2", "epochs=1", "heldout_fraction=0", "optim.lr=1e-3"]
    if name == "tgdpo":
        extra.append(f"loss.guidance_model={task_kit}")
    if name == "exo_pair":
        extra.append("loss.hparams.label_smoothing=0.001")  # EXO needs 0 < eps < 1
    trainer = DPOTrainer(dpo_cfg(task_kit, pairs, tmp_path / "run", *extra))
    before = [p.detach().clone() for p in trainer.model.parameters() if p.requires_grad]
    trainer.train()
    losses = [m["loss"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    after = [p for p in trainer.model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), f"{name} did not update the policy"


def test_weighted_mix_and_nll_term(task_kit, synth_task, tmp_path):
    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=4)
    cfg = dpo_cfg(task_kit, pairs, tmp_path / "run", "loss.names=[sigmoid,ipo]", "loss.weights=[1.0,0.5]",
                  "loss.nll_coef=0.2", "batch_size=4", "heldout_fraction=0")
    trainer = DPOTrainer(cfg)
    trainer._reference_pass()
    loss, _ = trainer.pair_losses(trainer.train_pairs)
    # the start policy is the reference: sigmoid = log 2, ipo = (1 / (2 beta))^2 = 25, plus 0.2 * token NLL
    with torch.no_grad():
        batch = trainer._pair_batch(trainer.train_pairs)
        logps = trainer._logps(trainer.model, batch)[:4]
        mask = batch.completion_mask[:4]
        nll = -((logps * mask).sum(-1) / mask.sum(-1)).mean()
    assert loss.item() == pytest.approx(0.693147 + 0.5 * 25.0 + 0.2 * nll.item(), rel=1e-4)


def test_bad_pair_rows_are_reported_and_skipped(task_kit, synth_task, tmp_path):
    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=3)
    with open(pairs, "a") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"pair_id": "x", "chosen": "a"}) + "\n")
    trainer = DPOTrainer(dpo_cfg(task_kit, pairs, tmp_path / "run", "heldout_fraction=0"))
    assert len(trainer.train_pairs) == 3
    assert len(trainer.errors) == 2
    assert any("pairs.jsonl:4" in e for e in trainer.errors), trainer.errors
    assert any("missing" in e for e in trainer.errors), trainer.errors


def test_resume_continues_from_the_checkpoint(warm_policy, synth_task, tmp_path, monkeypatch):
    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=16)
    cfg = dpo_cfg(warm_policy, pairs, tmp_path / "run", "batch_size=4", "save_every=2", "heldout_fraction=0")
    trainer = DPOTrainer(cfg)
    real, calls = trainer.pair_losses, []

    def crash(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(trainer, "pair_losses", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert (tmp_path / "run" / "checkpoints" / "step-000002").exists()
    summary = DPOTrainer(cfg).train(resume=True)
    steps = [m["step"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert steps == [0, 1, 2, 3] and summary["steps"] == 4


def test_wpo_weighting_and_ld_alpha_reach_the_loss(task_kit, synth_task, tmp_path):
    """use_weighting: at the start (policy = reference) each sigmoid pair loss is log 2 times WPO's weights,
    computed here from the model's own distribution; ld_alpha = 1 changes nothing, ld_alpha = 0 does (SimPO)."""
    from veripo.sequences import completion_logps

    pairs = write_pairs(synth_task, tmp_path / "pairs.jsonl", n=4)
    trainer = DPOTrainer(dpo_cfg(task_kit, pairs, tmp_path / "w", "loss.use_weighting=true", "heldout_fraction=0"))
    trainer._reference_pass()
    loss, _ = trainer.pair_losses(trainer.train_pairs)
    with torch.no_grad():
        batch = trainer._pair_batch(trainer.train_pairs)
        logps, lss = completion_logps(trainer.model, batch, with_log_sum_sq=True)
        m = batch.completion_mask
        w = torch.exp(((logps - lss) * m).sum(-1) / m.sum(-1))
    assert not torch.allclose(w, torch.ones_like(w))  # the weights are not trivially 1 here
    assert loss.item() == pytest.approx(float((math.log(2) * w[:4] * w[4:]).mean()), rel=1e-4)

    rows = read_jsonl(pairs)
    for r in rows:  # rejected answers that ramble on: longer than the chosen ones
        r["rejected"] = r["rejected"].replace("</think>", " Wait, let me look again at every frame.</think>")
    longer = tmp_path / "longer.jsonl"
    longer.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def simpo_loss(*extra):
        t = DPOTrainer(dpo_cfg(task_kit, longer, tmp_path / "s", "loss.names=[simpo]", "heldout_fraction=0", *extra))
        return t.pair_losses(t.train_pairs)[0].item()

    plain = simpo_loss()
    assert simpo_loss("loss.ld_alpha=1.0") == pytest.approx(plain, rel=1e-6)
    assert simpo_loss("loss.ld_alpha=0.0") != pytest.approx(plain, rel=1e-3)
    with pytest.raises(ValueError, match="sort the batch"):
        DPOTrainer(dpo_cfg(task_kit, pairs, tmp_path / "a", "loss.names=[aot]", "loss.use_weighting=true"))
