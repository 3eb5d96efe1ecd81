"""One token sequence from rollout to DPO (issue 17 item 3), on the twin kit (tags are several BPE pieces).

A rollout's token ids, its end token included, are what DPO trains on: the pair carries them, nothing is
decoded and re-encoded (the old path decoded with skip_special_tokens, stripped, re-tokenized: the sampled
``<|im_end|>`` was lost). A response made from text (a reflective combination of two rollouts) is encoded with
exactly one end token, as SFT's targets are.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from veripo.records import PairRecord
from veripo.verifier.config import VerifierConfig
from veripo.verifier.examples import COLOR, example_rollouts
from veripo.verifier.pairs import build_group_pairs, finalize_pairs
from veripo.verifier.pipeline import Verifier

from kit_fixtures import tiny_kit_dir, video_files  # noqa: F401


def sampled_rollouts(tok, video: str):
    """The example colour group as the HF engine returns rollouts: ids = the response's pieces + <|im_end|>
    (the EOS it sampled), text = those ids decoded with special tokens skipped."""
    end = tok.convert_tokens_to_ids("<|im_end|>")
    out = []
    for r in example_rollouts():
        if r.group_id != "0-color-1":
            continue
        ids = tok.encode(r.response, add_special_tokens=False) + ([end] if r.finish_reason == "stop" else [])
        text = tok.decode(ids, skip_special_tokens=True).strip()
        out.append(dataclasses.replace(r, response=text, token_ids=ids, sample=dataclasses.replace(r.sample, path=video)))
    return out


@pytest.fixture()
def dpo_pairs(tiny_kit_dir, video_files, tmp_path):
    from veripo.config import load_config
    from veripo.dpo.config import DPOConfig
    from veripo.dpo.trainer import DPOTrainer
    from veripo.models.load import load_policy

    model, processor = load_policy(tiny_kit_dir)
    tok = processor.tokenizer
    records = sampled_rollouts(tok, str(video_files["sq16"]))
    config = VerifierConfig()
    verdicts = {v.rollout_id: v for v in Verifier(config).verify(records)}
    pairs, _ = build_group_pairs(records, verdicts, config)
    pairs, _ = finalize_pairs(pairs, config)
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in pairs))  # the JSON round trip DPO reads
    cfg = load_config(DPOConfig, None, [f"model.path={tiny_kit_dir}", f"pairs_file={path}", f"out_dir={tmp_path / 'run'}",
                                        "tensorboard=false", "heldout_fraction=0", "video.num_frames=2",
                                        "video.min_pixels=3136", "video.max_pixels=3136"])
    trainer = DPOTrainer(cfg, model=model, processor=processor)
    return trainer, {r.rollout_id: r for r in records}, tok


def _rows(batch):
    ids, mask = batch.completion_ids.cpu(), batch.completion_mask.cpu()
    return [ids[i][mask[i] > 0].tolist() for i in range(ids.shape[0])]


def test_dpo_trains_on_the_rollouts_own_ids_end_token_included(dpo_pairs):
    trainer, rollouts, tok = dpo_pairs
    end = tok.convert_tokens_to_ids("<|im_end|>")
    pairs = [p for p in trainer.train_pairs]
    assert {p.kind for p, _ in pairs} >= {"quality", "reflective"}
    batch = trainer._pair_batch(pairs)
    rows = _rows(batch)
    B = len(pairs)
    checked = 0
    for i, (pair, _) in enumerate(pairs):
        rejected = rollouts[pair.provenance["rejected"][0]]
        assert pair.rejected_ids == rejected.token_ids
        assert rows[B + i] == rejected.token_ids and rows[B + i][-1] == end  # the sampled end token is kept
        assert tok.decode(rows[B + i], skip_special_tokens=True).strip() == pair.rejected  # judged text = these ids
        if pair.kind == "quality":
            chosen = rollouts[pair.provenance["chosen"][0]]
            assert rows[i] == chosen.token_ids and rows[i][-1] == end
            checked += 1
    assert checked >= 1


def test_a_reflective_chosen_ends_with_exactly_one_end_token(dpo_pairs):
    trainer, rollouts, tok = dpo_pairs
    end = tok.convert_tokens_to_ids("<|im_end|>")
    (refl,) = [(p, s) for p, s in trainer.train_pairs if p.kind == "reflective"]
    assert refl[0].chosen_ids is None  # text made by the verifier: DPO encodes it
    row = _rows(trainer._pair_batch([refl]))[0]
    assert row[-1] == end and row.count(end) == 1
    assert row[:-1] == tok.encode(refl[0].chosen, add_special_tokens=False)
    both = [rollouts[i] for i in refl[0].provenance["chosen"]]
    assert len(both) == 2 and all(r.token_ids[-1] == end for r in both)  # two ends joined -> one


def test_pairs_without_ids_still_load_and_encode_text_plus_end():
    old = {"pair_id": "x", "prompt_id": "1", "kind": "quality", "sample": dict(COLOR), "prompt": "p",
           "chosen": "<think>a</think><answer>B</answer>", "rejected": "<think>b</think><answer>C</answer>"}
    pair = PairRecord.from_dict(old)
    assert pair.chosen_ids is None and pair.rejected_ids is None
    assert PairRecord.from_dict(pair.to_dict()) == pair
