"""The rollout phase's pieces that need no model: the engine contract and factory, the batch's one shape, the
Filter step's signals (rewards with token counts, correctness), the per-step random streams."""
from __future__ import annotations

import pytest
import torch

from veripo.data.schema import Sample
from veripo.errors import ConfigError, VeripoError
from veripo.rewards import RewardSpec, is_correct
from veripo.rollout.engine import EngineCapabilities, EngineSpec, RolloutEngine, build_engine, capabilities
from veripo.rollout.hf_engine import HFEngine
from veripo.rollout.phase import RolloutBatch, cut_groups, group_index, score_rollouts, step_seed
from veripo.rollout.prune import PrefixPruner
from veripo.generation.types import Completion


def mc_sample(pid: str, answer: str = "A") -> Sample:
    return Sample(problem_id=pid, problem="Which colour?", data_type="text", problem_type="multiple choice",
                  options=["A. red", "B. green"], solution=f"<answer>{answer}</answer>")


def comp(text: str, n_tokens: int) -> Completion:
    return Completion(text, list(range(n_tokens)), [-0.1] * n_tokens, "stop")


def test_engines_declare_capabilities_and_a_minimal_engine_has_none():
    assert HFEngine.capabilities == EngineCapabilities(continues_partial=True, hidden_states=True,
                                                       receives_weights=False, prunes_midgen=True,
                                                       sampling_params=True, prompt_modes=True, swaps_model=True)

    class GenerateOnly:
        def generate(self, samples, n=1, temperature=0.0, max_new_tokens=256):
            return [[Completion("x", [1], [0.0], "stop")] * n for _ in samples]

    assert capabilities(GenerateOnly()) == EngineCapabilities()
    assert not isinstance(GenerateOnly(), RolloutEngine)


def test_unknown_engine_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="rollout engine 'sglang' is not one of hf, vllm") as e:
        build_engine(EngineSpec(name="sglang"))
    assert isinstance(e.value, VeripoError) and "\n" not in str(e.value)


def test_pruner_mode_follows_the_engine_capabilities():
    class Colocated:  # continues partial rollouts, but mid-generation pruning is not checked on it
        capabilities = EngineCapabilities(continues_partial=True, receives_weights=True)

    class Server:
        capabilities = EngineCapabilities()

    assert PrefixPruner(mode="auto").resolve_mode(Colocated()) == "posthoc"
    assert PrefixPruner(mode="auto").resolve_mode(HFEngine.__new__(HFEngine)) == "midgen"
    with pytest.raises(ConfigError, match="mode=midgen needs an engine"):
        PrefixPruner(mode="midgen").resolve_mode(Server())
    with pytest.raises(ConfigError, match="head=learned"):
        PrefixPruner(mode="midgen", head="learned").resolve_mode(Colocated())


def test_group_boundaries_are_made_in_one_place():
    assert group_index([2, 3, 1]).tolist() == [0, 0, 1, 1, 1, 2]
    assert cut_groups(list("abcdef"), [2, 3, 1]) == [["a", "b"], ["c", "d", "e"], ["f"]]
    groups = [[comp("a", 1), comp("b", 2)], [comp("c", 3)]]
    batch = RolloutBatch(0, [mc_sample("p0"), mc_sample("p1")], groups, {"total": [1.0, 0.0, 0.5]},
                         [True, False, True], replayed=False)
    assert batch.group_ids.tolist() == [0, 0, 1] and batch.sizes == [2, 1] and len(batch) == 3
    assert batch.per_group(batch.correct) == [[True, False], [True]]
    assert [s.problem_id for s in batch.rollout_samples] == ["p0", "p0", "p1"]


def test_filter_signals_read_the_sampled_token_counts_and_one_correctness_rule():
    """DAPO's overlong shaping (spec A1 numbers, max 20480 / cache 4096) on the rollouts' own token counts."""
    right = "<think>red</think><answer>A</answer>"
    groups = [[comp(right, 10000), comp(right, 17408)], [comp("<answer>B</answer>", 20480)]]
    spec = RewardSpec(weights={"accuracy": 1.0, "overlong": 1.0},
                      kwargs={"overlong": {"max_length": 20480, "cache_length": 4096}})
    scores, correct = score_rollouts(groups, [mc_sample("p0"), mc_sample("p1")], spec)
    assert scores["overlong"] == [0.0, -0.25, -1.0]
    assert scores["total"] == [1.0, 0.75, -1.0]
    assert correct == [True, True, False]
    assert is_correct(0.5) and not is_correct(0.45) and not is_correct(float("nan"))


def test_each_step_and_rank_has_its_own_stream_the_same_in_every_process():
    assert step_seed(0, 3, 0) == step_seed(0, 3, 0)
    assert len({step_seed(0, s, r) for s in range(4) for r in range(2)}) == 8
    torch.manual_seed(step_seed(0, 3))
    a = torch.rand(3)
    torch.manual_seed(step_seed(0, 3))
    assert torch.equal(a, torch.rand(3))
