"""Loud configuration: every impossible value and every misspelt keyword option fails at config loading (before any
model is loaded) with a one-line ConfigError that names the dotted key and the fix; the CLI prints it and exits 2."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from veripo.config import check_config, from_dict, load_config, merge, to_dict
from veripo.dpo.config import HPARAMS_COMPUTED, HPARAMS_SET_BY, DPOConfig
from veripo.errors import ConfigError, VeripoError
from veripo.grpo.config import LOSS_COMPUTED, LOSS_SET_BY, GRPOConfig
from veripo.loop.config import LoopConfig
from veripo.sft import SFTConfig
from veripo.verifier.config import VerifierConfig

ROOT = Path(__file__).resolve().parents[1]

# (config class, dotted overrides, a fragment the one-line message must contain); one row per rule
RULES = [
    # GRPO: keyword options checked against the function they go to
    (GRPOConfig, ["algo.advantage_kwargs.epz=1"], "algo.advantage_kwargs: unknown option(s) epz (valid: eps,"),
    (GRPOConfig, ["algo.advantage_estimator=mc_grpo", "algo.advantage_kwargs.eps=1"], "unknown option(s) eps"),
    (GRPOConfig, ["algo.advantage_estimator=gdpo", "algo.advantage_kwargs.singletn=raw"], "singleton"),  # via grpo
    (GRPOConfig, ["algo.advantage_kwargs.seq_logps=[1]"], "advantage_kwargs.seq_logps: the trainer computes"),
    (GRPOConfig, ["algo.advantage_kwargs.scale=bogus"], "the grpo estimator rejects them: scale must be"),
    (GRPOConfig, ["algo.advantage_estimator=grpo", "algo.advantage_kwargs.prob_weighted=true"], "prob_weighted"),
    (GRPOConfig, ["algo.loss_kwargs.clip_lo=0.1"], "algo.loss_kwargs: unknown option(s) clip_lo (valid: delta,"),
    (GRPOConfig, ["algo.loss_kwargs.clip_low=0.1"], "algo.loss_kwargs.clip_low: this is set by algo.clip_low"),
    (GRPOConfig, ["algo.loss_kwargs.mode=bnpo"], "set by algo.loss_agg_mode"),
    (GRPOConfig, ["algo.loss_kwargs.num_items_in_batch=4"], "the trainer computes this input itself"),
    (GRPOConfig, ["algo.policy_loss=drpo", "algo.loss_kwargs.lamda=0.1"], "unknown option(s) lamda (valid: beta_kl,"),
    (GRPOConfig, ["rollout.controller=gdro", "rollout.controller_kwargs.etaa=1"],
     "rollout.controller_kwargs (gdro): unknown option(s) etaa"),
    (GRPOConfig, ["rollout.controller_kwargs.eta=1"], "given but rollout.controller is none"),
    (GRPOConfig, ["rollout.prune=arrol", "rollout.prune_kwargs.pool=2"], "rollout.prune_kwargs: unknown option(s) pool"),
    (GRPOConfig, ["reward.weights.length=0.5", "reward.kwargs.length.min_tokns=3"],
     "reward.kwargs.length: unknown option(s) min_tokns"),
    # GRPO: names
    (GRPOConfig, ["algo.advantage_estimator=gpro"], "algo.advantage_estimator='gpro': unknown advantage estimator"),
    (GRPOConfig, ["algo.policy_loss=ppo_clipp"], "algo.policy_loss='ppo_clipp': unknown policy loss"),
    (GRPOConfig, ["algo.loss_agg_mode=token_mean"], "algo.loss_agg_mode='token_mean': must be one of grpo,"),
    (GRPOConfig, ["rollout.engine=sglang"], "rollout.engine='sglang': must be one of hf | vllm"),
    (GRPOConfig, ["reward.weights.acc=1"], "reward.weights: unknown reward 'acc'"),
    (GRPOConfig, ["optim.schedule=linaer"], "optim.schedule='linaer': must be one of linear | cosine | constant"),
    (GRPOConfig, ["model.dtype=fp16"], "model.dtype='fp16'"),
    (GRPOConfig, ["dist.backend=fsdp"], "dist.backend='fsdp'"),
    # GRPO: impossible values
    (GRPOConfig, ["rollout.group_size=1"], "rollout.group_size=1: with one rollout per prompt every grpo advantage is 0"),
    (GRPOConfig, ["rollout.group_size=1", "algo.advantage_estimator=rloo"], "every rloo advantage is 0"),
    (GRPOConfig, ["rollout.group_size=0"], "rollout.group_size=0: must be >= 1"),
    (GRPOConfig, ["rollout.prompts_per_step=0"], "rollout.prompts_per_step=0: must be >= 1"),
    (GRPOConfig, ["algo.max_num_gen_batches=0"], "algo.max_num_gen_batches=0: must be >= 1"),
    (GRPOConfig, ["algo.max_num_gen_batches=4"], "algo.max_num_gen_batches=4: refills only with algo.dynamic_sampling"),
    (GRPOConfig, ["algo.dynamic_sampling=true", "algo.max_num_gen_batches=4", "rollout.prune=arrol"],
     "rollout.prune='arrol': is not supported with algo.max_num_gen_batches > 1"),
    (GRPOConfig, ["rollout.temperature=-0.5"], "rollout.temperature=-0.5: must be > 0"),
    (GRPOConfig, ["rollout.temperature=0"], "rollout.temperature=0.0: must be > 0"),
    (GRPOConfig, ["rollout.top_p=1.5"], "rollout.top_p=1.5: must be in (0, 1]"),
    (GRPOConfig, ["rollout.top_p=0"], "rollout.top_p=0.0: must be in (0, 1]"),
    (GRPOConfig, ["rollout.top_k=-1"], "rollout.top_k=-1"),
    (GRPOConfig, ["rollout.max_new_tokens=0"], "rollout.max_new_tokens=0"),
    (GRPOConfig, ["rollout.batch_size=0"], "rollout.batch_size=0"),
    (GRPOConfig, ["rollout.vllm_gpu_memory_utilization=1.5"], "rollout.vllm_gpu_memory_utilization=1.5"),
    (GRPOConfig, ["rollout.vllm_max_model_len=100", "rollout.max_new_tokens=200"], "must exceed rollout.max_new_tokens"),
    (GRPOConfig, ["rollout.controller=gdro", "rollout.min_group_size=9"], "needs 1 <= min_group_size (9) <= group_size"),
    (GRPOConfig, ["rollout.controller=xrpo", "rollout.min_group_size=1"], "rollout.min_group_size >= 2"),
    (GRPOConfig, ["rollout.prune=arrol", "rollout.prune_kwargs.pool_factor=0.5"], "need pool_factor >= 1"),
    (GRPOConfig, ["rollout.tree_branches=[2,2]"], "give 4 leaves per prompt, but rollout.group_size=8"),
    (GRPOConfig, ["rollout.tree_branches=[2,2,2]", "rollout.controller=gdro"], "is not supported with rollout.tree_branches"),
    (GRPOConfig, ["algo.clip_low=1.2"], "algo.clip_low=1.2: must be in [0, 1)"),
    (GRPOConfig, ["algo.clip_high=-0.1"], "algo.clip_high=-0.1"),
    (GRPOConfig, ["algo.dual_clip=0.5"], "algo.dual_clip=0.5: must be > 1"),
    (GRPOConfig, ["algo.beta=-0.01"], "algo.beta=-0.01: the KL coefficient must be >= 0"),
    (GRPOConfig, ["algo.ppo_epochs=0"], "algo.ppo_epochs=0: must be >= 1"),
    (GRPOConfig, ["run.steps=0"], "run.steps=0: must be >= 1"),
    (GRPOConfig, ["run.save_every=-1"], "run.save_every=-1"),
    (GRPOConfig, ["run.keep_last=0"], "run.keep_last=0"),
    (GRPOConfig, ["data.max_rows=0"], "data.max_rows=0: must be >= 1, or null"),
    (GRPOConfig, ["optim.lr=-1e-6"], "optim.lr=-1e-06: the learning rate must be > 0"),
    (GRPOConfig, ["optim.micro_batch_size=0"], "optim.micro_batch_size=0: must be >= 1"),
    (GRPOConfig, ["optim.betas=[0.9]"], "optim.betas=[0.9]: AdamW needs two betas"),
    (GRPOConfig, ["optim.weight_decay=-1"], "optim.weight_decay=-1.0"),
    (GRPOConfig, ["optim.warmup_steps=-1"], "optim.warmup_steps=-1"),
    (GRPOConfig, ["optim.grad_clip=-1"], "optim.grad_clip=-1.0"),
    (GRPOConfig, ["model.lora_r=0"], "model.lora_r=0"),
    (GRPOConfig, ["model.lora_dropout=1"], "model.lora_dropout=1.0"),
    (GRPOConfig, ["dist.backend=deepspeed"], "dist.deepspeed_config='': backend=deepspeed needs a DeepSpeed JSON"),
    (GRPOConfig, ["dist.timeout_minutes=0"], "dist.timeout_minutes=0"),
    (GRPOConfig, ["video.num_frames=0"], "video.num_frames=0: must be >= 1"),
    (GRPOConfig, ["video.fps=0"], "video.fps=0.0: sampling by rate needs fps > 0"),
    (GRPOConfig, ["video.min_frames=8", "video.max_frames=4"], "video.min_frames=8: need 1 <= min_frames <= max_frames"),
    (GRPOConfig, ["video.min_pixels=100", "video.max_pixels=10"], "video.min_pixels=100: must be <= max_pixels=10"),
    (GRPOConfig, ["reward.weights.format=.nan"], "reward.weights.format=nan: must be a finite number"),
    (GRPOConfig, ["reward.kwargs.length.min_tokens=3"], "which are not in weights"),
    # DPO
    (DPOConfig, ["loss.hparams.label_smothing=0.1"], "loss.hparams: unknown option(s) label_smothing (valid: "),
    (DPOConfig, ["loss.names=[cdpo]", "loss.hparams.gamma_beta_ratio=0.5"], "unknown option(s) gamma_beta_ratio"),
    (DPOConfig, ["loss.hparams.beta=0.2"], "loss.hparams.beta: this is set by loss.beta"),
    (DPOConfig, ["loss.hparams.ld_alpha=0.5"], "loss.hparams.ld_alpha: this is set by loss.ld_alpha"),
    (DPOConfig, ["loss.hparams.chosen_scores=1"], "loss.hparams.chosen_scores: the trainer computes"),
    (DPOConfig, ["loss.names=[sigmod]"], "'sigmod' is not a preference loss; valid names: "),
    (DPOConfig, ["loss.names=[]"], "loss.names=[]: name at least one preference loss"),
    (DPOConfig, ["loss.weights=[1,2]"], "loss.weights=[1.0, 2.0]: give one weight per name"),
    (DPOConfig, ["loss.beta=0"], "loss.beta=0.0: DPO's beta must be > 0"),
    (DPOConfig, ["loss.beta=-0.1"], "loss.beta=-0.1"),
    (DPOConfig, ["loss.nll_coef=-1"], "loss.nll_coef=-1.0"),
    (DPOConfig, ["loss.names=[tgdpo]"], "loss.guidance_model=None: tgdpo needs a checkpoint"),
    (DPOConfig, ["loss.ld_alpha=1.5"], "ld_alpha must be in [0, 1]"),
    (DPOConfig, ["loss.names=[aot]", "loss.use_weighting=true"], "use_weighting (WPO) is undefined for aot"),
    (DPOConfig, ["epochs=0"], "epochs=0.0: must be > 0"),
    (DPOConfig, ["batch_size=0"], "batch_size=0: must be >= 1"),
    (DPOConfig, ["heldout_fraction=1"], "heldout_fraction=1.0: must be in [0, 1)"),
    (DPOConfig, ["optim.lr=-5e-7"], "optim.lr=-5e-07"),
    (DPOConfig, ["keep_last=0"], "keep_last=0"),
    # SFT
    (SFTConfig, ["batch_size=0"], "batch_size=0: must be >= 1"),
    (SFTConfig, ["run.steps=0"], "run.steps=0: must be >= 1"),
    (SFTConfig, ["stop.eval_every=0"], "stop.eval_every=0"),
    (SFTConfig, ["stop.min_accuracy=1.5"], "stop.min_accuracy=1.5: must be in [0, 1]"),
    (SFTConfig, ["stop.min_steps=-1"], "stop.min_steps=-1"),
    (SFTConfig, ["optim.micro_batch_size=0"], "optim.micro_batch_size=0"),
    # verifier
    (VerifierConfig, ["judge.kind=openia"], "judge.kind='openia': must be one of rule | openai | hf | none"),
    (VerifierConfig, ["judge.kind=openai"], "judge.url=None: judge.kind=openai needs the endpoint's base URL"),
    (VerifierConfig, ["judge.fallback=llm"], "judge.fallback='llm'"),
    (VerifierConfig, ["judge.timeout_s=0"], "judge.timeout_s=0.0"),
    (VerifierConfig, ["judge.concurrency=0"], "judge.concurrency=0"),
    (VerifierConfig, ["judge.retries=-1"], "judge.retries=-1"),
    (VerifierConfig, ["repetition.max_ngram_ratio=2"], "repetition.max_ngram_ratio=2.0"),
    (VerifierConfig, ["repetition.ngram=0"], "repetition.ngram=0"),
    (VerifierConfig, ["pairs.kinds=[quality,reflect]"], "(reflect is not one)"),
    (VerifierConfig, ["pairs.max_quality_per_prompt=-1"], "pairs.max_quality_per_prompt=-1"),
    (VerifierConfig, ["correct_threshold=0"], "correct_threshold=0.0: must be in (0, 1]"),
    (VerifierConfig, ["batch_size=0"], "batch_size=0"),
    (VerifierConfig, ["accuracy_reward=acc"], "accuracy_reward: unknown reward 'acc'"),
    # loop: its own fields, and every stage section of every iteration (named with the stage's prefix)
    (LoopConfig, ["iterations=0"], "iterations=0: must be >= 1"),
    (LoopConfig, ["drop_solved_ratio=1.5"], "drop_solved_ratio=1.5"),
    (LoopConfig, ["eval.samples=-1"], "eval.samples=-1"),
    (LoopConfig, ["eval.temperature=0"], "eval.temperature=0.0: sampled answers (eval.samples=4) need a temperature > 0"),
    (LoopConfig, ["eval.batch_size=0"], "eval.batch_size=0"),
    (LoopConfig, ["grpo.rollout.prompts_per_step=0"], "grpo.rollout.prompts_per_step=0: must be >= 1"),
    (LoopConfig, ["grpo.algo.advantage_kwargs.epz=1"], "grpo.algo.advantage_kwargs: unknown option(s) epz"),
    (LoopConfig, ["dpo.loss.beta=0"], "dpo.loss.beta=0.0"),
    (LoopConfig, ["video.num_frames=0"], "grpo.video.num_frames=0"),
    (LoopConfig, ["iteration_overrides={'2': {dpo: {epochs: 0}}}"], "dpo.epochs=0.0: must be > 0 passes over the pairs (VerIPO: 1) (iteration 2: iteration_overrides.2.dpo"),
]


@pytest.mark.parametrize("cls, overrides, fragment", RULES, ids=[" ".join(r[1]) for r in RULES])
def test_each_config_rule_fails_at_load_with_one_line(cls, overrides, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(cls, None, overrides)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert isinstance(info.value, VeripoError) and isinstance(info.value, ValueError)


def test_defaults_and_sensible_variants_pass():
    for cls in (GRPOConfig, DPOConfig, SFTConfig, LoopConfig, VerifierConfig):
        check_config(cls())
        load_config(cls, None, [])
    for overrides in (["rollout.group_size=1", "algo.advantage_kwargs.singleton=raw"],  # verl: A = r, not 0
                      ["algo.advantage_estimator=branch", "rollout.tree_branches=[2,2,2]", "algo.advantage_kwargs.prob_weighted=true"],
                      ["algo.advantage_estimator=gdpo", "algo.decoupled_rewards=true", "algo.advantage_kwargs.std_normalize=false"],
                      ["algo.advantage_estimator=xrpo", "algo.advantage_kwargs.novelty_lambda=1.0"],
                      ["algo.loss_kwargs.importance_sampling_level=sequence", "algo.loss_agg_mode=token-mean"],
                      ["rollout.controller=gdro", "rollout.controller_kwargs.eta=0.5", "rollout.min_group_size=2"],
                      ["rollout.prune=arrol", "rollout.prune_kwargs.rho=0.4"],
                      ["reward.weights.length=0.5", "reward.kwargs.length.min_tokens=8"]):
        load_config(GRPOConfig, None, overrides)
    load_config(DPOConfig, None, ["loss.names=[cdpo,simpo]", "loss.hparams.label_smoothing=0.1",
                                  "loss.hparams.gamma_beta_ratio=0.5", "loss.hparams.f_divergence_type=js_divergence"])


def test_a_config_built_in_code_is_checked_by_check_config():
    cfg = GRPOConfig()
    cfg.rollout.top_p = 2.0
    with pytest.raises(ConfigError, match=r"^rollout\.top_p=2\.0: must be in \(0, 1\]"):
        check_config(cfg)
    cfg = DPOConfig()
    cfg.loss.hparams = {"gama": 1.0}
    with pytest.raises(ConfigError, match="loss.hparams: unknown option"):
        check_config(cfg)


def test_demo_sections_pass_the_rules():
    """veripo demo builds its SFT and loop configs from DemoConfig's sections (full and --quick)."""
    from veripo.demo.config import QUICK, DemoConfig

    for demo in (DemoConfig(), from_dict(DemoConfig, merge(to_dict(DemoConfig()), QUICK))):
        from_dict(SFTConfig, merge({"model": {"path": "kit", **demo.loop.get("model", {})}, "train_file": "t.jsonl",
                                    "video": demo.video, "stop": {"val_file": "v.jsonl"}}, demo.sft))
        loop = from_dict(LoopConfig, merge(demo.loop, {"model_path": "sft", "train_file": "t.jsonl",
                                                       "test_file": "test.jsonl", "video": demo.video}))
        check_config(loop)


def _call_keywords(path_glob: str, attr: str) -> set[str]:
    """Keyword names of every call ``<x>.<attr>(...)`` in the files (``**kwargs`` left out)."""
    names: set[str] = set()
    for path in sorted(ROOT.glob(path_glob)):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == attr:
                names |= {k.arg for k in node.keywords if k.arg}
    return names


def test_grpo_loss_inputs_list_matches_the_update():
    """LOSS_SET_BY / LOSS_COMPUTED name what the update passes to the policy loss: keep them true."""
    passed = _call_keywords("veripo/**/*.py", "policy_loss")
    assert passed, "no call to .policy_loss(...) found"
    assert passed == (set(LOSS_SET_BY) - {"mode"}) | set(LOSS_COMPUTED)


def test_dpo_hparams_lists_match_the_stage():
    """HPARAMS_SET_BY / HPARAMS_COMPUTED name what the DPO stage adds to loss.hparams (the dict ``hp`` handed to
    ``weighted_preference_losses``, and that call's own keywords): keep them true."""
    keys: set[str] = set()

    def on_hp(node) -> bool:
        return isinstance(node, ast.Name) and node.id == "hp"

    for path in sorted(ROOT.glob("veripo/dpo/*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef) or "weighted_preference_losses(" not in ast.unparse(fn):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and on_hp(getattr(node.func, "value", None)):
                    if node.func.attr == "setdefault":
                        keys.add(node.args[0].value)
                    keys |= {k.arg for k in node.keywords if k.arg}
                elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "weighted_preference_losses":
                    keys |= {k.arg for k in node.keywords if k.arg}
                elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict) and any(
                        on_hp(t) for t in getattr(node, "targets", [getattr(node, "target", None)])):
                    keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
                elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and on_hp(node.value):
                    keys.add(node.slice.value)
    assert keys, "no preference-loss call found in veripo/dpo"
    assert keys == set(HPARAMS_SET_BY) | set(HPARAMS_COMPUTED)


CLI_CASES = [
    (["grpo", "model.path=/nonexistent", "algo.advantage_kwargs.epz=1"],
     "veripo grpo: error: algo.advantage_kwargs: unknown option(s) epz (valid: eps,"),
    (["dpo", "model.path=/nonexistent", "loss.beta=0"], "veripo dpo: error: loss.beta=0.0: DPO's beta must be > 0"),
    (["sft", "model.path=/nonexistent", "run.steps=0"], "veripo sft: error: run.steps=0: must be >= 1"),
    (["loop", "model_path=/nonexistent", "grpo.rollout.top_p=1.5"], "veripo loop: error: grpo.rollout.top_p=1.5"),
    (["grpo", "--config", "/nonexistent/run.yaml"], "veripo grpo: error: config file not found: /nonexistent/run.yaml"),
    (["loop", "model_path=m", "train_file={rows}", "--stage", "grpo"], "veripo loop: error: --stage grpo needs --iteration N"),
    # input files, before the model: each command checks the files it reads
    (["grpo", "model.path=/nonexistent", "data.train_file=/nonexistent/train.jsonl"],
     "veripo grpo: error: data.train_file='/nonexistent/train.jsonl': no such file (the JSONL"),
    (["grpo", "model.path=/nonexistent"], "veripo grpo: error: data.train_file='': give the JSONL"),
    (["grpo", "model.path=/nonexistent", "data.train_file={rows}", "data.exclude_ids_file=/nonexistent/ids.txt"],
     "data.exclude_ids_file='/nonexistent/ids.txt': no such file"),
    (["dpo", "model.path=/nonexistent", "pairs_file=/nonexistent/pairs.jsonl"],
     "veripo dpo: error: pairs_file='/nonexistent/pairs.jsonl': no such file"),
    (["sft", "model.path=/nonexistent", "train_file={rows}", "stop.val_file=/nonexistent/val.jsonl"],
     "veripo sft: error: stop.val_file='/nonexistent/val.jsonl': no such file"),
    (["grpo", "model.path=/nonexistent", "data.train_file={rows}", "dist.backend=deepspeed",
      "dist.deepspeed_config=/nonexistent/ds.json"], "dist.deepspeed_config='/nonexistent/ds.json': no such file"),
    (["loop", "model_path=m", "train_file=/nonexistent/train.jsonl"], "veripo loop: error: train_file="),
    (["loop", "train_file={rows}"], "veripo loop: error: model_path='': give the starting policy"),
]


@pytest.mark.parametrize("args, fragment", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_prints_one_line_and_exits_2_before_loading_a_model(args, fragment, capsys, tmp_path):
    from veripo.cli import main

    rows = tmp_path / "rows.jsonl"
    rows.write_text("")
    assert main([a.format(rows=rows) for a in args]) == 2  # model.path=/nonexistent would fail if loaded first
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], err


def test_cli_subprocess_fails_fast_without_a_traceback():
    """The real command line: exit status 2, one line on stderr, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "veripo.cli", *CLI_CASES[0][0]], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(CLI_CASES[0][1]), proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_files_are_path_errors():
    from veripo.errors import PathError
    from veripo.io_utils import read_jsonl

    with pytest.raises(PathError, match="file not found: /nonexistent/pairs.jsonl") as info:
        read_jsonl("/nonexistent/pairs.jsonl")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, VeripoError)
    with pytest.raises(PathError, match="train_file='/nonexistent/x.jsonl': no such file"):
        check_config(from_dict(SFTConfig, {"train_file": "/nonexistent/x.jsonl"}), inputs=True)
    check_config(from_dict(SFTConfig, {"train_file": "/nonexistent/x.jsonl"}))  # values only: the loop's sections


def test_cli_one_line_joins_a_multi_line_message():
    from veripo.cli import one_line

    assert one_line(ConfigError("a\n  b\n")) == "a | b"
