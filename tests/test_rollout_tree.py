"""Partial rollouts on the HF engine: exact continuation, tree rollouts with shared prefixes, their layout for the
``branch`` estimator (algorithms.md A9 worked example), and GRPO on trees end to end."""
from __future__ import annotations

import pytest
import torch

from veripo.algos import get_advantage_estimator
from veripo.config import load_config
from veripo.data.schema import load_samples
from veripo.grpo.config import GRPOConfig
from veripo.grpo.trainer import GRPOTrainer, tree_shape
from veripo.io_utils import read_jsonl
from veripo.rollout.partial import require_partial
from veripo.rollout.tree import TreeShape, grow_trees, tree_layout
from veripo.generation.types import Completion, SamplingParams
from veripo.sequences import extend_prompts, select_prompts

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO, VIDEO_DICT, synth_task, task_kit, warm_policy  # noqa: F401


@pytest.fixture()
def engine(warm_policy):
    from veripo.models.load import load_policy
    from veripo.rollout.hf_engine import HFEngine
    from veripo.video.sampling import VideoSampling

    model, processor = load_policy(warm_policy)
    return HFEngine(model, processor, VideoSampling(**VIDEO_DICT), batch_size=4)


def test_a_continued_head_is_the_rollout_sampled_in_one_go(engine, synth_task):
    samples = load_samples(synth_task / "val.jsonl")[:3]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=30)
    full = engine.generate(samples, n=1, params=greedy)
    heads = engine.generate(samples, n=1, params=SamplingParams(temperature=0.0, max_new_tokens=5))
    tails = engine.continue_from(engine.prompt_batch(samples), [0, 1, 2], [h[0].token_ids for h in heads], 1,
                                 SamplingParams(temperature=0.0, max_new_tokens=25))
    for (f,), (h,), (t,) in zip(full, heads, tails):
        assert len(h.token_ids) == 5 and f.token_ids == h.token_ids + t.token_ids
        assert torch.allclose(torch.tensor(f.logps), torch.tensor(h.logps + t.logps), atol=1e-4)
        assert t.finish_reason == f.finish_reason


def test_tree_leaves_share_their_prefixes_and_decode_each_segment_once(engine, synth_task):
    samples = load_samples(synth_task / "val.jsonl")[:2]
    torch.manual_seed(0)
    trees = grow_trees(engine, samples, TreeShape((2, 2, 2), 4), SamplingParams(temperature=1.0, max_new_tokens=24))
    assert len(trees) == 2
    for leaves in trees:
        assert 2 <= len(leaves) <= 8
        paths = [tuple(c.tree["path"]) for c in leaves]
        assert len(set(paths)) == len(paths) and paths == sorted(paths)
        for c in leaves:
            cuts = c.tree["cuts"]
            assert cuts[-1] == len(c.token_ids) == len(c.logps) <= 24
            assert all(b - a == 4 for a, b in zip([0] + cuts[:-2], cuts[:-1]))  # inner segments are 4 tokens
            assert c.finish_reason == "stop" or len(c.tree["path"]) == 3
        for a in leaves:  # leaves through the same node hold the very same tokens up to its cut
            for b in leaves:
                for depth, (na, nb) in enumerate(zip(a.tree["path"], b.tree["path"])):
                    if na != nb:
                        break
                    cut = a.tree["cuts"][depth]
                    assert a.token_ids[:cut] == b.token_ids[:cut] and a.logps[:cut] == b.logps[:cut]
    layout = tree_layout(trees, max(len(c.token_ids) for t in trees for c in t))
    owned = int(layout.train_mask.sum())
    total = sum(len(c.token_ids) for t in trees for c in t)
    assert owned < total  # the shared segments were decoded (and are trained) once
    # every token of every leaf is owned by exactly one leaf of its tree: owned = the tree's distinct tokens
    distinct = sum(len({(tuple(c.tree["path"][:d + 1]), i) for c in t for d in range(len(c.tree["path"]))
                        for i in range(c.tree["cuts"][d] - (c.tree["cuts"][d - 1] if d else 0))}) for t in trees)
    assert owned == distinct


def leaf(path, cuts, reward_tag=""):
    n = cuts[-1]
    return Completion(text=reward_tag, token_ids=list(range(1, n + 1)), logps=[-0.5] * n, finish_reason="stop",
                      tree={"path": path, "cuts": cuts})


def test_tree_layout_gives_the_worked_example_per_segment():
    """algorithms.md A9: leaves [0.8, 0.6 | 0.2, 0.4] -> depth-1 A = +-0.707107, leaf A = [1.161895, 0.387298,
    -1.161895, -0.387298]; each shared segment is trained in its first leaf only."""
    tree = [leaf([1, 3], [2, 5]), leaf([1, 4], [2, 4]), leaf([2, 5], [3, 6]), leaf([2, 6], [3, 5])]
    layout = tree_layout([tree], 6)
    assert layout.parent_ids.tolist() == [-1, 0, 1, 1, 0, 4, 4]
    rewards = layout.node_rewards(torch.tensor([0.8, 0.6, 0.2, 0.4]))
    out = get_advantage_estimator("branch")(rewards, layout.group_ids, parent_ids=layout.parent_ids,
                                            token_node_ids=layout.token_node_ids)
    a, leafs = 0.707107, [1.161895, 0.387298, -1.161895, -0.387298]
    expected = torch.tensor([
        [a, a, leafs[0], leafs[0], leafs[0], 0],
        [0, 0, leafs[1], leafs[1], 0, 0],
        [-a, -a, -a, leafs[2], leafs[2], leafs[2]],
        [0, 0, 0, leafs[3], leafs[3], 0]])
    assert torch.allclose(out.advantages, expected, atol=1e-5)
    assert layout.train_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 0, 0], [1] * 6, [0, 0, 0, 1, 1, 0]]
    assert layout.edge_logps[1].item() == pytest.approx(-1.0)  # node 1's two tokens at -0.5 each


def test_flat_rollouts_make_branch_equal_grpo_with_the_unbiased_std():
    flat = [Completion("", [1, 2, 3], [-0.1] * 3, "stop"), Completion("", [4, 5], [-0.1] * 2, "stop"),
            Completion("", [6], [-0.1], "stop")]
    layout = tree_layout([flat], 3)
    rewards = torch.tensor([1.0, 0.0, 0.5])
    out = get_advantage_estimator("branch")(layout.node_rewards(rewards), layout.group_ids,
                                            parent_ids=layout.parent_ids, token_node_ids=layout.token_node_ids)
    grpo = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
    for row, n in enumerate([3, 2, 1]):
        assert torch.allclose(out.advantages[row, :n], grpo[row].expand(n), atol=1e-6)
        assert out.advantages[row, n:].abs().sum() == 0


def tree_cfg(model, task, out, *extra):
    return load_config(GRPOConfig, None, [
        f"model.path={model}", "model.freeze_vision=false", f"data.train_file={task / 'train.jsonl'}",
        f"run.out_dir={out}", "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=32",
        "rollout.temperature=1.0", "run.tensorboard=false", "optim.lr=1e-4", "rollout.tree_branches=[2,2]",
        "rollout.tree_segment_tokens=6", "algo.advantage_estimator=branch", *VIDEO, *extra])


def test_grpo_on_trees_trains_each_segment_once_and_stores_the_trees(warm_policy, synth_task, tmp_path):
    out = tmp_path / "run"
    trainer = GRPOTrainer(tree_cfg(warm_policy, synth_task, out, "run.steps=2", "run.save_every=0"))
    before = [p.detach().clone() for p in trainer.model.parameters() if p.requires_grad]
    trainer.train()
    rollouts = read_jsonl(out / "rollouts.jsonl")
    metrics = read_jsonl(out / "metrics.jsonl")
    assert all(r["tree"]["cuts"][-1] == len(r["token_ids"]) for r in rollouts)  # extra keys are stored flat
    for step in (0, 1):
        recs = [r for r in rollouts if r["step"] == step]
        assert len(recs) <= 2 * 4
        # the stored trees rebuild the step's layout: same decoded-token count as the run measured
        from veripo.rollout.records import groups_from_records
        from veripo.records import RolloutRecord

        _, groups = groups_from_records([RolloutRecord.from_dict(r) for r in recs])
        layout = tree_layout(groups, max(len(c.token_ids) for g in groups for c in g))
        m = metrics[step]
        assert m["tree/decoded_tokens"] == layout.train_mask.sum().item() < m["tree/leaf_tokens"]
        assert 0 < m["tree/decode_saving"] < 1
    after = [p for p in trainer.model.parameters() if p.requires_grad]
    assert any(not torch.equal(b, p) for b, p in zip(before, after))


def test_tree_config_is_checked(warm_policy, synth_task, tmp_path):
    with pytest.raises(ValueError, match="4 leaves per prompt, but rollout.group_size=8"):
        tree_shape(tree_cfg(warm_policy, synth_task, tmp_path, "rollout.group_size=8"))
    with pytest.raises(ValueError, match="no room for the last segment"):
        tree_shape(tree_cfg(warm_policy, synth_task, tmp_path, "rollout.tree_segment_tokens=32"))
    with pytest.raises(ValueError, match="not supported"):
        tree_shape(tree_cfg(warm_policy, synth_task, tmp_path, "rollout.controller=xrpo"))
    with pytest.raises(ValueError, match="continues partial rollouts"):
        require_partial(object(), "rollout.tree_branches")


def test_reward_rises_with_tree_rollouts_and_branch_advantages(warm_policy, tmp_path):
    """The learnable all-'A' task of test_grpo_trainer, sampled as trees of 8 leaves with per-segment advantages."""
    from train_fixtures import all_red_rows

    rows = all_red_rows(tmp_path / "red.jsonl")
    torch.manual_seed(0)
    cfg = load_config(GRPOConfig, None, [
        f"model.path={warm_policy}", "model.freeze_vision=false", f"data.train_file={rows}",
        f"run.out_dir={tmp_path / 'run'}", "rollout.prompts_per_step=4", "rollout.group_size=8",
        "rollout.max_new_tokens=40", "rollout.temperature=1.0", "run.tensorboard=false", "optim.lr=3e-4",
        "optim.micro_batch_size=32", "run.steps=24", "run.save_every=0", "rollout.tree_branches=[2,2,2]",
        "rollout.tree_segment_tokens=8", "algo.advantage_estimator=branch", *VIDEO])
    GRPOTrainer(cfg).train()
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    acc = [m["reward/accuracy"] for m in metrics]
    assert sum(acc[-5:]) / 5 > sum(acc[:5]) / 5 + 0.15, acc
    assert all(m["tree/decode_saving"] > 0 for m in metrics)


def test_rollout_logprobs_are_the_policys_sampling_distribution(engine, synth_task):
    """The recorded log-probs equal a teacher-forced forward at the rollout temperature, even when the checkpoint's
    generation_config carries other sampling defaults (Qwen2.5-VL ships top_k=1, repetition_penalty=1.05)."""
    from veripo.sequences import build_sequences, completion_logps

    gc = engine.model.generation_config
    gc.temperature, gc.top_k, gc.top_p, gc.repetition_penalty = 0.01, 1, 0.001, 1.5
    samples = load_samples(synth_task / "val.jsonl")[:2]
    torch.manual_seed(0)
    groups = engine.generate(samples, n=3, params=SamplingParams(temperature=0.7, max_new_tokens=20))
    flat = [c for g in groups for c in g]
    assert len({tuple(c.token_ids) for c in flat}) > 1  # sampled at 0.7, not the checkpoint's near-greedy default
    batch = build_sequences(engine.prompt_batch(samples), [0, 0, 0, 1, 1, 1], [c.token_ids for c in flat],
                            engine.tokenizer.pad_token_id)
    with torch.no_grad():
        forced, _ = completion_logps(engine.model, batch, temperature=0.7)
    for i, c in enumerate(flat):
        assert torch.allclose(torch.tensor(c.logps), forced[i, : len(c.token_ids)], atol=2e-3), i  # cached decoding vs one forward


def test_captured_hidden_state_is_the_policys_last_layer_state_before_the_last_token(engine, synth_task):
    """ARRoL's learned head reads it: the final-layer (post-norm) hidden state after reading all of a rollout's
    tokens but the last, as one forward over prompt + those tokens gives it."""
    samples = load_samples(synth_task / "val.jsonl")[:1]
    batch = engine.prompt_batch(samples)
    (comps,) = engine.continue_from(batch, [0], [[]], 2, SamplingParams(temperature=1.0, max_new_tokens=6),
                                    capture_hidden=True)
    for c in comps:
        assert c.features is not None and c.features.shape == (engine.model.config.get_text_config().hidden_size,)
        inputs = extend_prompts(select_prompts(batch, [0]), [c.token_ids[:-1]], engine.tokenizer.pad_token_id)
        with torch.no_grad():
            out = engine.model(**inputs, output_hidden_states=True, use_cache=False)
        assert torch.allclose(c.features, out.hidden_states[-1][0, -1].float(), atol=1e-3)
    assert engine.continue_from(batch, [0], [[]], 1, SamplingParams(max_new_tokens=3))[0][0].features is None
