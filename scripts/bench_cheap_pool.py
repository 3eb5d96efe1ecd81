"""Micro benchmark: Sol-RL's cheap exploration pool on the CPU -- sampling throughput of the int8 copy
(``veripo.rollout.quantized.quantized_copy``) vs the full-precision tiny policy, on the synthetic colour task.

    python scripts/bench_cheap_pool.py [--prompts 4] [--pool 16] [--keep 4] [--max-new-tokens 32] [--repeats 3]
                                       [--threads 1] [--json out.json]

For each engine (``full`` = the float32 policy, ``int8`` = its dynamically quantised copy) the same prompts are
sampled ``--repeats`` times (after one warm-up call) with ``--pool`` candidates per prompt at temperature 1.0;
reported: median seconds, generated tokens per second and rollouts per second. For the int8 pool it also runs the
rest of the Sol-RL step as the GRPO stage would: score the pool, keep the top/bottom ``--keep`` per prompt
(``pool_subset_mask``), recompute the subset's log-probs with the full-precision policy by teacher forcing
(``completion_logps``) and form the truncated importance weights (``truncated_is_weights``, cap 3): the seconds
of the quantisation, of the recompute, and the weights' mean / fraction capped. The tiny policy is random-init
(``build_tiny_kit``), so most rollouts run to ``--max-new-tokens``: equal work on both sides.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_grpo_vs_trl import prepare  # noqa: E402  (synthetic task + tiny kit)


def sample_pool(engine, samples, pool: int, max_new_tokens: int, repeats: int, seed: int = 0) -> dict:
    import torch

    from veripo.generation.types import SamplingParams

    params = SamplingParams(temperature=1.0, max_new_tokens=max_new_tokens)
    engine.generate(samples[:1], n=2, params=params)  # warm-up (allocator, kernels)
    seconds, tokens, groups = [], [], None
    for r in range(repeats):
        torch.manual_seed(seed + r)
        t0 = time.perf_counter()
        groups = engine.generate(samples, n=pool, params=params)
        seconds.append(time.perf_counter() - t0)
        tokens.append(sum(len(c.token_ids) for g in groups for c in g))
    s = statistics.median(seconds)
    tok = statistics.median(tokens)
    return {"seconds": s, "tokens": tok, "tokens_per_s": tok / s, "rollouts_per_s": len(samples) * pool / s,
            "groups": groups}


def sol_rl_step(model, processor, engine_batch, samples, groups, keep: int) -> dict:
    """Score the cheap pool, keep top/bottom ``keep`` per prompt, recompute their log-probs at full precision."""
    import torch

    from veripo.algos import pool_subset_mask, truncated_is_weights
    from veripo.rewards import compute_rewards
    from veripo.sequences import build_sequences, completion_logps

    flat = [c for g in groups for c in g]
    owners = [i for i, g in enumerate(groups) for _ in g]
    scores = compute_rewards([c.text for c in flat], [samples[i] for i in owners])
    rewards = torch.tensor(scores["total"], dtype=torch.float64)
    gids = torch.tensor(owners)
    chosen = torch.nonzero(pool_subset_mask(rewards, gids, keep, keep)).flatten().tolist()
    sub = [flat[i] for i in chosen]
    batch = build_sequences(engine_batch, [owners[i] for i in chosen], [c.token_ids for c in sub],
                            processor.tokenizer.pad_token_id)
    t0 = time.perf_counter()
    with torch.no_grad():
        full_logps, _ = completion_logps(model, batch)
    recompute = time.perf_counter() - t0
    cheap = torch.zeros_like(full_logps)
    for row, c in enumerate(sub):
        cheap[row, : len(c.logps)] = torch.tensor(c.logps)
    w = truncated_is_weights(full_logps, cheap, batch.completion_mask, cap=3.0)
    m = batch.completion_mask > 0
    return {"subset": len(sub), "recompute_s": recompute, "is_weight_mean": float(w[m].mean()),
            "is_capped_frac": float((w[m] >= 3.0).float().mean()),
            "abs_logp_diff_mean": float((full_logps - cheap)[m].abs().mean()),
            "reward_mean_pool": float(rewards.mean()), "reward_mean_subset": float(rewards[chosen].mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--pool", type=int, default=16, help="candidates per prompt")
    ap.add_argument("--keep", type=int, default=4, help="top-k and bottom-k kept per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import veripo  # noqa: F401  (torchvision shim)
    from veripo.data.schema import load_samples
    from veripo.models.load import load_policy
    from veripo.rollout.hf_engine import HFEngine
    from veripo.rollout.quantized import quantized_copy
    from veripo.video.sampling import VideoSampling

    with tempfile.TemporaryDirectory(prefix="bench-cheap-pool-") as tmp:
        paths = prepare(Path(tmp), max(args.prompts, 4))
        model, processor = load_policy(paths["kit"])
        samples = load_samples(paths["video_file"])[: args.prompts]
        video = VideoSampling(num_frames=8, min_pixels=3136, max_pixels=3136)
        t0 = time.perf_counter()
        cheap = quantized_copy(model)
        quantize_s = time.perf_counter() - t0
        results = {}
        for name, m in (("full", model), ("int8", cheap)):
            engine = HFEngine(m, processor, video, batch_size=args.prompts, max_sequences=args.prompts * args.pool)
            results[name] = sample_pool(engine, samples, args.pool, args.max_new_tokens, args.repeats)
        groups = results["int8"].pop("groups")
        results["full"].pop("groups")
        step = sol_rl_step(model, processor, engine.prompt_batch(samples), samples, groups, args.keep)
    out = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "torch": torch.__version__, "quant_engine": torch.backends.quantized.engine, "quantize_s": quantize_s,
           **results, "int8_speedup_tokens_per_s": results["int8"]["tokens_per_s"] / results["full"]["tokens_per_s"],
           "sol_rl_step": step}
    for name in ("full", "int8"):
        r = results[name]
        print(f"{name:5s} {r['seconds']:7.3f} s  {r['tokens']:6.0f} tokens  {r['tokens_per_s']:8.1f} tok/s  "
              f"{r['rollouts_per_s']:6.2f} rollouts/s")
    print(f"int8 / full tokens/s: {out['int8_speedup_tokens_per_s']:.2f}x   quantize {quantize_s:.3f} s")
    print("sol-rl step:", json.dumps(step))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
