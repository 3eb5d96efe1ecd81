"""Benchmark: one GRPO step and one DPO step with LoRA on the Qwen2.5-VL shape twins (veripo/models/shape_twin.py),
on the CPU, at 448x448 x 16 frames: peak memory and time of each phase.

    python scripts/bench_shape_twins.py [--sizes 3B 7B] [--layers 2] [--vision-depth 2] [--tokens 8] [--group 2]
                                        [--dtype bfloat16] [--json out.json]

Each size runs in its own process (so its peak RSS is its own). Per size: build (random init at true width), the
GRPO step (G rollouts of ``--tokens`` new tokens on the HF engine, then the policy-gradient loss over their
log-probs, backward, AdamW step on the LoRA weights) and the DPO step (a reference pass, then the sigmoid loss
over a chosen/rejected pair, backward, step). The video is 16 frames of 448x448 (1024 patches a frame, 2048 LM
tokens for the clip): the model's real sequence lengths at that size; only the depth is cut.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def run_one(size: str, layers: int, vision_depth: int, tokens: int, group: int, dtype: str) -> dict:
    import numpy as np
    import torch

    import veripo  # noqa: F401  (torchvision shim)
    from veripo.algos import combine_preference_losses, get_policy_loss
    from veripo.algos.preference_weighting import weighted_preference_losses
    from veripo.data.schema import Sample
    from veripo.models.lora import apply_lora
    from veripo.models.shape_twin import build_shape_twin
    from veripo.models.tokenizer import response_end_id
    from veripo.rollout.hf_engine import HFEngine
    from veripo.generation.types import SamplingParams
    from veripo.sequences import build_sequences, completion_logps
    from veripo.video.sampling import VideoSampling
    from veripo.video.write import write_mp4

    out: dict = {"size": size, "layers": layers, "vision_depth": vision_depth, "dtype": dtype, "frames": 16,
                 "frame_size": "448x448", "group": group, "new_tokens": tokens}
    t0 = time.perf_counter()
    model, processor = build_shape_twin(size, num_layers=layers, vision_depth=vision_depth, dtype=dtype)
    out["params_b"] = round(sum(p.numel() for p in model.parameters()) / 1e9, 3)
    model = apply_lora(model, r=8, alpha=16)
    out["build_s"] = round(time.perf_counter() - t0, 1)
    tok = processor.tokenizer
    work = Path(tempfile.mkdtemp(prefix="shape-twin-"))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (16, 448, 448, 3), dtype=np.uint8)
    video = write_mp4(work / "clip.mp4", frames, fps=8)
    sampling = VideoSampling(num_frames=16, min_pixels=448 * 448, max_pixels=448 * 448)
    sample = Sample(problem_id="1", problem="What happens in the video?", problem_type="free-form",
                    solution="noise", path=str(video))
    engine = HFEngine(model, processor, sampling, batch_size=1)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    # GRPO step: rollouts, then loss over their log-probs, backward, step
    t0 = time.perf_counter()
    (group_out,) = engine.generate([sample], n=group, params=SamplingParams(temperature=1.0, max_new_tokens=tokens))
    out["grpo_rollout_s"] = round(time.perf_counter() - t0, 1)
    prompts = engine.prompt_batch([sample])
    out["prompt_tokens"] = int(prompts.inputs["input_ids"].shape[1])
    t0 = time.perf_counter()
    model.train()
    batch = build_sequences(prompts, [0] * group, [c.token_ids for c in group_out], tok.pad_token_id)
    logps, _ = completion_logps(model, batch, micro_batch_size=1)
    old = torch.zeros_like(logps)
    for i, c in enumerate(group_out):
        old[i, : len(c.logps)] = torch.tensor(c.logps)
    advantages = torch.tensor([1.0, -1.0] * (group // 2) + [0.0] * (group % 2))
    loss, _ = get_policy_loss("grpo")(logps, old, advantages, batch.completion_mask)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    out["grpo_train_s"] = round(time.perf_counter() - t0, 1)
    out["grpo_loss_finite"] = bool(torch.isfinite(loss))
    out["peak_rss_after_grpo_gb"] = round(peak_gb(), 2)

    # DPO step: reference pass, then the sigmoid loss over one pair, backward, step
    end = response_end_id(tok)
    chosen = tok.encode("<think>The frames are noise.</think><answer>noise</answer>", add_special_tokens=False) + [end]
    rejected = tok.encode("<think>A red ball.</think><answer>ball</answer>", add_special_tokens=False) + [end]
    t0 = time.perf_counter()
    pair = build_sequences(prompts, [0, 0], [chosen, rejected], tok.pad_token_id)
    with torch.no_grad():
        ref, _ = completion_logps(model, pair, micro_batch_size=1)
    out["dpo_reference_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    logps, _ = completion_logps(model, pair, micro_batch_size=1)
    m = pair.completion_mask
    losses = weighted_preference_losses(combine_preference_losses(["sigmoid"]), logps[:1], logps[1:], m[:1], m[1:],
                                        ref[:1], ref[1:], beta=0.1)
    losses.mean().backward()
    optimizer.step()
    out["dpo_train_s"] = round(time.perf_counter() - t0, 1)
    out["dpo_loss"] = round(float(losses.mean()), 4)  # log(2) = 0.6931 at the reference
    out["peak_rss_gb"] = round(peak_gb(), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["3B", "7B"])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vision-depth", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--group", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--json", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one size in this process
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.layers, args.vision_depth, args.tokens, args.group, args.dtype)))
        return 0
    results = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", size, "--layers", str(args.layers), "--vision-depth",
               str(args.vision_depth), "--tokens", str(args.tokens), "--group", str(args.group), "--dtype", args.dtype]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
