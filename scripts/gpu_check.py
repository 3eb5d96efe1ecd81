"""GPU check: throughput, MFU and memory of veripo's engine and trainers on a Qwen2.5-VL-7B shape twin, and
CPU/GPU agreement on the tiny kit (issue 18). Run it as ``bash scripts/gpu_check.sh [--cpu] [--json out.json]``.

What it does, in one process, with veripo's own APIs (``HFEngine``, ``GRPOTrainer``, ``DPOTrainer``,
``build_sequences`` / ``completion_logps``, the policy-loss registry), nothing downloaded:

1. **twin**: a random-init Qwen2.5-VL with the 7B model's true widths (``SHAPES["7b"]``: text hidden 3584, 28
   heads, 4 KV heads, MLP 18944, head_dim 128 with mRoPE sections [16, 24, 24], vocabulary 152064, untied
   head; ViT width 1280, 16 heads, MLP 3420, out 3584) but only ``layers`` decoder layers and
   ``vision_depth`` ViT blocks, written as a normal checkpoint folder with a locally trained tokenizer and the
   tiny kit's processor (veripo.models.tiny.build_processor). The tokenizer is small: ids above it decode to
   nothing, which changes no cost (a random model never stops early, so every rollout runs to the budget).
2. **generate**: bf16 ``HFEngine.generate`` on the synthetic video task, generated tokens per second;
3. **grpo-lora / grpo-full / dpo-lora / dpo-full**: a few ``GRPOTrainer`` / ``DPOTrainer`` steps, LoRA and
   full training (vision tower frozen, the VerIPO default): seconds per step, trained tokens per second of the
   update, MFU, peak memory;
4. **parity** (the tiny kit): greedy rollouts in fp32 on the device equal those on CPU, token for token; and
   the teacher-forced mean log-prob, a GRPO loss (ppo_clip, old policy = the CPU fp32 log-probs, fixed
   advantages) and the DPO losses of two ``DPOTrainer`` steps in bf16 on the device agree with CPU fp32
   within bf16 tolerance (``|a - b| <= 0.02 |b| + 0.05``).

MFU = achieved FLOP/s / the device's dense bf16 peak (``PEAK_BF16``; ``--peak-tflops`` overrides), with the
language model's matmul FLOPs only (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", C = 6 N
per trained token): ``N`` = decoder + head weights (no input embedding, no ViT), ``6 N`` per token for full
training (forward 2N + backward 4N), ``4 N`` for LoRA (the frozen weights' gradients are not computed),
``2 N`` per generated token; attention-score FLOPs and the frozen ViT's forward are left out, so MFU is a
lower bound. Tokens are the non-padding tokens (attention mask) of the training forwards, counted by a
forward pre-hook while the model is in train mode.

``--cpu`` runs the same code path on CPU with ``SHAPES["cpu"]`` (a few hundred thousand parameters) and
fp32, in well under a minute on an idle machine; its figures are not benchmarks. The 7B shape lives here,
not in veripo/models/tiny.py, until that module's shape-twin profiles (issue 17) can take it.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sibling_script(name: str):
    """A script beside this one, loaded from its file (putting scripts/ on sys.path would make scripts/deepspeed/
    importable as a fake ``deepspeed`` package)."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True)
class TwinShape:
    """Widths of a Qwen2.5-VL shape twin (few layers, true widths)."""

    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    layers: int
    vocab: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    vision_depth: int
    rope_theta: float = 1e6
    tie_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


SHAPES = {
    # Qwen2.5-VL-7B-Instruct's config.json widths; 2 of its 28 decoder layers, 4 of its 32 ViT blocks
    "7b": TwinShape(hidden=3584, heads=28, kv_heads=4, intermediate=18944, layers=2, vocab=152064,
                    vision_hidden=1280, vision_heads=16, vision_intermediate=3420, vision_depth=4),
    # the --cpu dry run: the same structure, small enough for seconds on CPU
    "cpu": TwinShape(hidden=64, heads=4, kv_heads=2, intermediate=128, layers=1, vocab=1024,
                     vision_hidden=32, vision_heads=2, vision_intermediate=64, vision_depth=2, rope_theta=1e4),
}

# dense bf16 peak FLOP/s by device-name substring (vendor data sheets, SXM parts)
PEAK_BF16 = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}

TOLERANCE = (0.02, 0.05)  # bf16 vs fp32: |a - b| <= rel * |b| + abs


def mrope_sections(head_dim: int) -> list[int]:
    from veripo.models.tiny import mrope_section

    return mrope_section(head_dim)  # [16, 24, 24] for head_dim 128


def twin_config(shape: TwinShape, tokenizer):
    """A ``Qwen2_5_VLConfig`` with ``shape``'s widths and the tokenizer's special-token ids."""
    from transformers import Qwen2_5_VLConfig

    tid = tokenizer.convert_tokens_to_ids
    depth = shape.vision_depth
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
            num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
            max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=shape.tie_embeddings,
            bos_token_id=tid("<|endoftext|>"), eos_token_id=tid("<|im_end|>"), pad_token_id=tid("<|endoftext|>"),
            rope_parameters={"rope_type": "default", "rope_theta": shape.rope_theta,
                             "mrope_section": mrope_sections(shape.head_dim)},
        ),
        vision_config=dict(
            depth=depth, hidden_size=shape.vision_hidden, intermediate_size=shape.vision_intermediate,
            num_heads=shape.vision_heads, out_hidden_size=shape.hidden, patch_size=14, spatial_merge_size=2,
            temporal_patch_size=2, window_size=112, tokens_per_second=2,
            fullatt_block_indexes=[i for i in range(depth) if i % 8 == 7] or [depth - 1],
        ),
        image_token_id=tid("<|image_pad|>"), video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"), vision_end_token_id=tid("<|vision_end|>"),
        tie_word_embeddings=shape.tie_embeddings,
    )


def build_twin(out_dir: Path, shape: TwinShape, corpus, device: str, min_pixels: int, max_pixels: int) -> Path:
    """Random-init twin (initialised on ``device``, saved in bf16 on CUDA, fp32 on CPU) + tokenizer + processor."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from veripo.models.tiny import TinyModelSpec, build_processor
    from veripo.models.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(corpus, vocab_size=512)
    processor = build_processor(tokenizer, TinyModelSpec(min_pixels=min_pixels, max_pixels=max_pixels))
    config = twin_config(shape, tokenizer)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    tid = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(bos_token_id=tid("<|endoftext|>"), pad_token_id=tid("<|endoftext|>"),
                                               eos_token_id=[tid("<|im_end|>"), tid("<|endoftext|>")])
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    del model
    return out_dir


# ----------------------------------------------------------------------------------------------- measuring
def lm_matmul_params(model) -> int:
    """Decoder + head weights (no input embedding, no ViT, no LoRA matrices): the ``N`` of ``C = 6 N``."""
    skip = ("visual", "embed_tokens", "lora_")
    return sum(p.numel() for n, p in model.named_parameters() if not any(s in n for s in skip))


def device_peak(device: str, override_tflops: float | None) -> tuple[str, float | None]:
    import torch

    if override_tflops:
        return (torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"), override_tflops * 1e12
    if not device.startswith("cuda"):
        return "cpu", None
    name = torch.cuda.get_device_name()
    return name, next((v for k, v in PEAK_BF16.items() if k in name), None)


def mfu(flops: float, seconds: float, peak: float | None) -> float | None:
    return None if not peak or seconds <= 0 else flops / seconds / peak


@contextlib.contextmanager
def peak_memory(device: str, out: dict):
    """Peak GPU memory allocated inside the block (GiB); on CPU the process's peak RSS so far."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        yield
    finally:
        if cuda:
            torch.cuda.synchronize()
            out["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
        else:
            out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


class TrainTokens:
    """Counts the non-padding tokens of forwards made while the model is in train mode."""

    def __init__(self, model):
        import torch

        inner = next((m for m in model.modules() if type(m).__name__.endswith("ForConditionalGeneration")), model)
        self.count = 0

        def hook(module, args, kwargs):
            if module.training:
                mask = kwargs.get("attention_mask")
                ids = kwargs.get("input_ids")
                if torch.is_tensor(mask):
                    self.count += int(mask.sum())
                elif torch.is_tensor(ids):
                    self.count += ids.numel()

        self.handle = inner.register_forward_pre_hook(hook, with_kwargs=True)

    def close(self) -> None:
        self.handle.remove()


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def release() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- data
@dataclasses.dataclass
class Setup:
    """What every phase reads: the device, dtype, sizes and files."""

    device: str
    dtype: str
    work: Path
    train_file: str
    pairs_file: str
    pairs: int
    prompts: int
    group: int
    tokens: int
    steps: int
    frames: int
    min_pixels: int
    max_pixels: int
    peak: float | None

    def video_overrides(self) -> list[str]:
        return [f"video.num_frames={self.frames}", f"video.min_pixels={self.min_pixels}",
                f"video.max_pixels={self.max_pixels}"]

    def video_sampling(self):
        from veripo.video.sampling import VideoSampling

        return VideoSampling(num_frames=self.frames, min_pixels=self.min_pixels, max_pixels=self.max_pixels)


def write_task(work: Path, n_rows: int, n_pairs: int):
    """The synthetic video task and a pairs file (a correct and a wrong response per question)."""
    pair_rows = sibling_script("bench_dpo_vs_trl").pair_rows

    from veripo.data.synthetic import SynthSpec, generate_task, task_corpus
    from veripo.records import PairRecord

    spec = SynthSpec(n_train=n_rows, n_val=0, n_test=0, types=("color",))
    files = generate_task(work / "task", spec, progress=False)
    rows = pair_rows(str(files.splits["train"]), n_pairs)
    pairs_file = work / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(PairRecord(
        pair_id=f"p{i:03d}", prompt_id=r["sample"].problem_id, kind="quality", sample=r["sample"],
        prompt=r["sample"].problem, chosen=r["chosen"], rejected=r["rejected"]).to_dict()) + "\n"
        for i, r in enumerate(rows)))
    return files, spec, task_corpus(spec), pairs_file, len(rows)


# ----------------------------------------------------------------------------------------------- phases
def phase_generate(kit: Path, s: Setup) -> dict:
    from veripo.data.schema import load_samples
    from veripo.models.load import load_policy
    from veripo.rollout.hf_engine import HFEngine
    from veripo.generation.types import SamplingParams

    out: dict = {}
    with peak_memory(s.device, out):
        model, processor = load_policy(kit, dtype=s.dtype, device=s.device)
        engine = HFEngine(model, processor, video_sampling=s.video_sampling(), batch_size=s.prompts)
        samples = load_samples(s.train_file)[: s.prompts]
        params = SamplingParams(temperature=1.0, max_new_tokens=s.tokens, stop_at_answer=False)
        engine.generate(samples[:1], n=1, params=SamplingParams(temperature=1.0, max_new_tokens=4))  # warm-up
        sync(s.device)
        t0 = time.perf_counter()
        groups = engine.generate(samples, n=s.group, params=params)
        sync(s.device)
        seconds = time.perf_counter() - t0
    new_tokens = sum(len(c.token_ids) for g in groups for c in g)
    n = lm_matmul_params(model)
    out.update(seconds=seconds, generated_tokens=new_tokens, tokens_per_s=new_tokens / seconds,
               mfu=mfu(2 * n * new_tokens, seconds, s.peak), lm_params=n,
               params=sum(p.numel() for p in model.parameters()), sequences=len(samples) * s.group)
    del model, engine
    release()
    return out


def _step_summary(step_s: list[float]) -> dict:
    measured = step_s[1:] or step_s  # the first step warms up kernels and caches
    return {"step_s": statistics.median(measured), "step_s_all": step_s}


def phase_grpo(kit: Path, s: Setup, lora: bool) -> dict:
    from veripo.config import load_config
    from veripo.grpo.config import GRPOConfig
    from veripo.grpo.trainer import GRPOTrainer

    run_dir = s.work / f"grpo-{'lora' if lora else 'full'}"
    cfg = load_config(GRPOConfig, None, [
        f"model.path={kit}", f"model.device={s.device}", f"model.dtype={s.dtype}", f"model.lora={str(lora).lower()}",
        f"data.train_file={s.train_file}", f"rollout.prompts_per_step={s.prompts}", f"rollout.group_size={s.group}",
        f"rollout.max_new_tokens={s.tokens}", f"rollout.batch_size={s.prompts}", "rollout.temperature=1.0",
        "algo.beta=0.0", f"optim.micro_batch_size={min(8, s.prompts * s.group)}", "optim.lr=1e-6",
        f"run.steps={s.steps}", "run.save_every=0", "run.tensorboard=false", f"run.out_dir={run_dir}",
        *s.video_overrides()])
    out: dict = {}
    with peak_memory(s.device, out):
        trainer = GRPOTrainer(cfg)
        counter = TrainTokens(trainer.model)
        step_s, inner = [], trainer.step

        def timed(step, replayed=None):
            sync(s.device)
            t = time.perf_counter()
            result = inner(step, replayed)
            sync(s.device)
            step_s.append(time.perf_counter() - t)
            return result

        trainer.step = timed
        trainer.train()
        counter.close()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    measured = metrics[1:] or metrics
    update_s = statistics.median(m["time/update_s"] for m in measured)
    generate_s = statistics.median(m["time/generate_s"] for m in measured)
    tokens_per_step = counter.count / len(metrics)
    n = lm_matmul_params(trainer.model)
    out.update(_step_summary(step_s), update_s=update_s, generate_s=generate_s,
               train_tokens_per_step=tokens_per_step, update_tokens_per_s=tokens_per_step / update_s,
               generate_tokens_per_s=statistics.median(m["tokens_per_s"] for m in measured),
               mfu_update=mfu((4 if lora else 6) * n * tokens_per_step, update_s, s.peak),
               loss=[m.get("loss") for m in metrics], lm_params=n)
    del trainer
    release()
    return out


def dpo_config(kit: Path, s: Setup, run_dir: Path, lora: bool, dtype: str, device: str, steps: int, batch: int,
               video: list[str]):
    from veripo.config import load_config
    from veripo.dpo.config import DPOConfig

    return load_config(DPOConfig, None, [
        f"model.path={kit}", f"model.device={device}", f"model.dtype={dtype}", f"model.lora={str(lora).lower()}",
        f"pairs_file={s.pairs_file}", f"run.out_dir={run_dir}", f"batch_size={batch}",
        f"epochs={steps * batch / s.pairs}", "heldout_fraction=0", "run.tensorboard=false", "run.save_every=0",
        "loss.names=[sigmoid]", "loss.beta=0.1", "optim.lr=1e-6", f"optim.micro_batch_size={batch}", *video])


def run_dpo(cfg, device: str) -> tuple[object, list[float], int, list[dict]]:
    """Train; returns (trainer, seconds between consecutive optimiser steps (one whole step each), trained
    tokens per step, metrics rows). The reference pass runs in eval mode, so its tokens are not counted."""
    from veripo.dpo.trainer import DPOTrainer

    trainer = DPOTrainer(cfg)
    counter = TrainTokens(trainer.model)
    marks, inner = [], trainer.train_engine.step

    def timed(*a, **k):
        result = inner(*a, **k)
        sync(device)
        marks.append(time.perf_counter())
        return result

    trainer.train_engine.step = timed
    trainer.train()
    counter.close()
    rows = [json.loads(line) for line in (Path(cfg.run.out_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r]
    return trainer, [b - a for a, b in zip(marks, marks[1:])], counter.count // max(1, len(marks)), rows


def phase_dpo(kit: Path, s: Setup, lora: bool) -> dict:
    run_dir = s.work / f"dpo-{'lora' if lora else 'full'}"
    batch = max(1, s.pairs // 2)
    out: dict = {}
    with peak_memory(s.device, out):
        trainer, step_s, tokens_per_step, rows = run_dpo(
            dpo_config(kit, s, run_dir, lora, s.dtype, s.device, s.steps, batch, s.video_overrides()), s.device)
    summary = {"step_s": statistics.median(step_s) if step_s else float("nan"), "step_s_all": step_s}
    n = lm_matmul_params(trainer.model)
    out.update(summary, train_tokens_per_step=tokens_per_step, tokens_per_s=tokens_per_step / summary["step_s"],
               mfu=mfu((4 if lora else 6) * n * tokens_per_step, summary["step_s"], s.peak),
               loss=[r["loss"] for r in rows], lm_params=n)
    del trainer
    release()
    return out


def close(a: float, b: float) -> bool:
    rel, abs_ = TOLERANCE
    return math.isfinite(a) and abs(a - b) <= rel * abs(b) + abs_


def phase_parity(s: Setup, accel: str) -> dict:
    """The tiny kit on ``accel`` vs CPU: fp32 greedy rollouts equal; bf16 log-probs and losses within tolerance."""
    import torch

    from veripo.algos.policy_losses import get_policy_loss
    from veripo.data.schema import load_samples
    from veripo.data.synthetic import task_corpus, SynthSpec
    from veripo.models import build_tiny_kit
    from veripo.models.load import load_policy
    from veripo.rollout.hf_engine import HFEngine
    from veripo.generation.types import SamplingParams
    from veripo.sequences import build_sequences, completion_logps
    from veripo.video.sampling import VideoSampling

    if accel.startswith("cuda"):  # fp32 means fp32: no TF32 in matmuls or the ViT's Conv3d patch embedding
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    kit = build_tiny_kit(s.work / "tiny-kit", corpus=task_corpus(SynthSpec(types=("color",))))
    sampling = VideoSampling(num_frames=8, max_pixels=56 * 56, min_pixels=None)
    samples = load_samples(s.train_file)[:2]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=16, stop_at_answer=False)

    def rollouts(device: str) -> list[list[int]]:
        model, processor = load_policy(kit, dtype="float32", device=device)
        return [g[0].token_ids for g in HFEngine(model, processor, sampling).generate(samples, n=1, params=greedy)]

    cpu_ids, accel_ids = rollouts("cpu"), rollouts(accel)

    def losses(device: str, dtype: str, old: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        model, processor = load_policy(kit, dtype=dtype, device=device)
        engine = HFEngine(model, processor, sampling)
        batch = build_sequences(engine.prompt_batch(samples), [0, 1], cpu_ids, processor.tokenizer.pad_token_id)
        batch.model_inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.model_inputs.items()}
        batch.completion_ids, batch.completion_mask = batch.completion_ids.to(device), batch.completion_mask.to(device)
        with torch.no_grad():
            logps, _ = completion_logps(model, batch, 1.0)
        logps = logps.float().cpu()
        mask = batch.completion_mask.float().cpu()
        loss, _ = get_policy_loss("ppo_clip")(logps=logps, old_logps=old if old is not None else logps.detach(),
                                             advantages=torch.tensor([1.0, -0.5]), mask=mask)
        return logps, float(loss)

    cpu_logps, cpu_loss = losses("cpu", "float32", None)
    dev_logps, dev_loss = losses(accel, "bfloat16" if accel.startswith("cuda") else "float32", cpu_logps)
    mask = (cpu_logps != 0).float()
    cpu_mean = float((cpu_logps * mask).sum() / mask.sum())
    dev_mean = float((dev_logps * mask).sum() / mask.sum())

    dpo = {}
    for side, device, dtype in (("cpu", "cpu", "float32"),
                                ("accel", accel, "bfloat16" if accel.startswith("cuda") else "float32")):
        cfg = dpo_config(kit, s, s.work / f"parity-dpo-{side}", False, dtype, device,
                         steps=2, batch=2, video=["video.num_frames=8", "video.min_pixels=3136", "video.max_pixels=3136"])
        trainer, _, _, rows = run_dpo(cfg, device)
        dpo[side] = {"loss": [r["loss"] for r in rows],
                                                       "logps_chosen": [r["logps/chosen"] for r in rows]}
        del trainer
        release()
    dpo_close = all(close(a, b) for key in ("loss", "logps_chosen")
                    for a, b in zip(dpo["accel"][key], dpo["cpu"][key]))
    return {
        "device": accel, "rollouts_equal": cpu_ids == accel_ids, "rollout_tokens": [len(x) for x in cpu_ids],
        "mean_logp": {"cpu_fp32": cpu_mean, "device": dev_mean, "close": close(dev_mean, cpu_mean)},
        "grpo_loss": {"cpu_fp32": cpu_loss, "device": dev_loss, "close": close(dev_loss, cpu_loss)},
        "dpo": {**dpo, "close": dpo_close},
        "ok": cpu_ids == accel_ids and close(dev_mean, cpu_mean) and close(dev_loss, cpu_loss) and dpo_close,
    }


# ----------------------------------------------------------------------------------------------- main
PHASES = ("generate", "grpo-lora", "grpo-full", "dpo-lora", "dpo-full", "parity")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="dry run on CPU with the reduced shape (SHAPES['cpu'])")
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None, help="twin shape (default: 7b, cpu with --cpu)")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    ap.add_argument("--steps", type=int, default=None, help="trainer steps per phase (default 4; 2 with --cpu)")
    ap.add_argument("--prompts", type=int, default=None, help="prompts per GRPO step (default 4; 2 with --cpu)")
    ap.add_argument("--group", type=int, default=None, help="rollouts per prompt (default 4; 2 with --cpu)")
    ap.add_argument("--tokens", type=int, default=None, help="rollout budget in tokens (default 128; 8 with --cpu)")
    ap.add_argument("--frames", type=int, default=None, help="frames per video (default 8; 4 with --cpu)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak (default: table)")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed after)")
    ap.add_argument("--json", default=None, help="write the results here")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import veripo  # noqa: F401  (torchvision shim before transformers)
    import torch

    cpu = args.cpu
    if not cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; use --cpu for the dry run", file=sys.stderr)
        return 2
    device = "cpu" if cpu else "cuda"
    shape_name = args.shape or ("cpu" if cpu else "7b")
    pick = lambda value, gpu, dry: value if value is not None else (dry if cpu else gpu)  # noqa: E731
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        print(f"gpu_check: unknown phase(s) {unknown}; choose from {list(PHASES)}", file=sys.stderr)
        return 2
    if cpu:
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    name, peak = device_peak(device, args.peak_tflops)
    with contextlib.ExitStack() as stack:
        work = Path(args.work) if args.work else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu-check-")))
        work.mkdir(parents=True, exist_ok=True)
        prompts, group = pick(args.prompts, 4, 2), pick(args.group, 4, 2)
        files, _, corpus, pairs_file, n_pairs = write_task(work, n_rows=max(8, prompts * 2), n_pairs=max(4, 2 * prompts))
        pixels = (128 * 28 * 28, 128 * 28 * 28) if not cpu else (56 * 56, 56 * 56)  # 128 tokens/frame on the GPU
        s = Setup(device=device, dtype="float32" if cpu else "bfloat16", work=work,
                  train_file=str(files.splits["train"]), pairs_file=str(pairs_file), pairs=n_pairs,
                  prompts=prompts, group=group, tokens=pick(args.tokens, 128, 8), steps=pick(args.steps, 4, 2),
                  frames=pick(args.frames, 8, 4), min_pixels=pixels[0], max_pixels=pixels[1], peak=peak)
        result: dict = {"device": name, "peak_bf16_flops": peak, "shape": shape_name,
                        "twin": dataclasses.asdict(SHAPES[shape_name]), "torch": torch.__version__,
                        "sizes": {k: getattr(s, k) for k in ("prompts", "group", "tokens", "steps", "frames",
                                                             "min_pixels", "max_pixels", "dtype")}}
        t0 = time.perf_counter()
        kit = None
        if any(p != "parity" for p in phases):
            kit = build_twin(work / f"twin-{shape_name}", SHAPES[shape_name], corpus, device, s.min_pixels, s.max_pixels)
            result["twin_build_s"] = time.perf_counter() - t0
        runners = {"generate": lambda: phase_generate(kit, s),
                   "grpo-lora": lambda: phase_grpo(kit, s, lora=True), "grpo-full": lambda: phase_grpo(kit, s, lora=False),
                   "dpo-lora": lambda: phase_dpo(kit, s, lora=True), "dpo-full": lambda: phase_dpo(kit, s, lora=False),
                   "parity": lambda: phase_parity(s, device)}
        for phase in phases:
            t = time.perf_counter()
            result[phase] = runners[phase]()
            result[phase]["wall_s"] = time.perf_counter() - t
            print(f"gpu_check {phase}: {summary_line(phase, result[phase])}", flush=True)
        result["wall_s"] = time.perf_counter() - t0
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    ok = result.get("parity", {}).get("ok", True)
    print(f"gpu_check: {'ok' if ok else 'PARITY FAILED'} on {name} ({shape_name} twin) in {result['wall_s']:.1f} s")
    return 0 if ok else 1


def _fmt(x, spec=".3g") -> str:
    return "n/a" if x is None else format(x, spec)


def summary_line(phase: str, r: dict) -> str:
    mem = f"peak mem {_fmt(r.get('peak_mem_gib'))} GiB" if "peak_mem_gib" in r else f"peak RSS {_fmt(r.get('peak_rss_gib'))} GiB"
    if phase == "generate":
        return f"{r['tokens_per_s']:.1f} generated tok/s ({r['generated_tokens']} tokens), MFU {_fmt(r['mfu'])}, {mem}"
    if phase.startswith("grpo"):
        return (f"{r['step_s']:.2f} s/step (generate {r['generate_s']:.2f}, update {r['update_s']:.2f}), "
                f"update {r['update_tokens_per_s']:.0f} tok/s, MFU {_fmt(r['mfu_update'])}, {mem}")
    if phase.startswith("dpo"):
        return f"{r['step_s']:.2f} s/step, {r['tokens_per_s']:.0f} tok/s, MFU {_fmt(r['mfu'])}, {mem}"
    return (f"rollouts equal {r['rollouts_equal']}, mean log-prob {r['mean_logp']['device']:.4f} vs "
            f"{r['mean_logp']['cpu_fp32']:.4f}, GRPO loss {r['grpo_loss']['device']:.4f} vs "
            f"{r['grpo_loss']['cpu_fp32']:.4f}, DPO close {r['dpo']['close']}: {'ok' if r['ok'] else 'FAILED'}")


if __name__ == "__main__":
    sys.exit(main())
