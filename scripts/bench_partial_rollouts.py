"""Benchmark: what tree rollouts and ARRoL mid-generation pruning save in generation, on the HF engine.

    python scripts/bench_partial_rollouts.py [--prompts 4] [--group 8] [--tokens 128] [--repeats 3] [--json out.json]

Same model, prompts (synthetic colour videos, 8 frames) and sampling (T = 1.0) for every mode:

* ``flat``           G independent rollouts per prompt (one ``generate`` call);
* ``tree``           ``rollout.tree_branches = [2, 2, 2]`` (G = 8 leaves), segments of T/4 tokens;
* ``arrol-posthoc``  a pool of 2G rollouts generated to completion, G kept (what any engine can do);
* ``arrol-midgen``   a pool of 2G heads of T/8 tokens, G kept and only those continued (ARRoL's "prune as you
                     generate", ``rollout.prune_kwargs.mode=midgen``).

Reported per mode: the median wall time of ``--repeats`` runs (after one warm-up), the tokens DECODED (new tokens
produced by ``generate``, summed over every call; prefills of shared prefixes are not decoding), and the rollouts
and tokens handed to training. The tiny random model (``--model`` absent) rarely stops before ``--tokens``, the
regime where decoding dominates; ``--model PATH`` benchmarks a trained policy instead.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def prepare(work: Path, prompts: int) -> tuple[str, str]:
    import veripo  # noqa: F401  (torchvision shim)
    from veripo.data.synthetic import SynthSpec, generate_task, task_corpus
    from veripo.models import build_tiny_kit

    spec = SynthSpec(n_train=max(prompts, 4), n_val=2, n_test=2, types=("color",))
    files = generate_task(work / "task", spec, progress=False)
    return str(build_tiny_kit(work / "kit", corpus=task_corpus(spec))), str(files.splits["train"])


class DecodeCounter:
    """Wraps an engine's ``_sample`` to count the new tokens every ``generate`` call produced."""

    def __init__(self, engine):
        self.tokens = 0
        inner = engine._sample

        def counted(inputs, n, params):
            out = inner(inputs, n, params)
            self.tokens += sum(len(c.token_ids) for c in out)
            return out

        engine._sample = counted


def run_mode(mode: str, engine, samples, group: int, tokens: int, seed: int) -> dict:
    import torch

    from veripo.rollout.partial import generate_groups
    from veripo.rollout.prune import PrefixPruner
    from veripo.rollout.tree import TreeShape, grow_trees, tree_layout
    from veripo.generation.types import SamplingParams

    params = SamplingParams(temperature=1.0, max_new_tokens=tokens)
    counter = DecodeCounter(engine)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    if mode == "flat":
        groups = generate_groups(engine, samples, [group] * len(samples), params)
    elif mode == "tree":
        groups = grow_trees(engine, samples, TreeShape((2, 2, 2), max(1, tokens // 4)), params)
    else:
        pruner = PrefixPruner(seed, pool_factor=2.0, prefix_tokens=max(1, tokens // 8), trust_head="never",
                              mode=mode.split("-")[1])
        groups, _ = pruner.generate(engine, seed, samples, [group] * len(samples), params)
    wall = time.perf_counter() - t0
    del engine._sample  # back to the class's method
    flat = [c for g in groups for c in g]
    trained = sum(len(c.token_ids) for c in flat)
    if mode == "tree":
        trained = int(tree_layout(groups, max(len(c.token_ids) for c in flat)).train_mask.sum())
    return {"wall_s": wall, "decoded_tokens": counter.tokens, "rollouts": len(flat), "trained_tokens": trained,
            "mean_rollout_tokens": sum(len(c.token_ids) for c in flat) / len(flat)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=None, help="a policy directory (default: the tiny random kit)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.group != 8:
        ap.error("--repeats must be >= 1, and --group 8 (the tree is [2, 2, 2])")
    import os

    import torch

    torch.set_num_threads(2)
    from veripo.data.schema import load_samples
    from veripo.models.load import load_policy
    from veripo.rollout.hf_engine import HFEngine
    from veripo.video.sampling import VideoSampling

    with tempfile.TemporaryDirectory() as tmp:
        kit, rows = prepare(Path(tmp), args.prompts)
        model, processor = load_policy(args.model or kit)
        engine = HFEngine(model, processor, VideoSampling(num_frames=8, min_pixels=3136, max_pixels=3136),
                          batch_size=args.prompts, max_sequences=args.prompts * args.group * 2)
        samples = load_samples(rows)[: args.prompts]
        modes = ("flat", "tree", "arrol-posthoc", "arrol-midgen")
        results: dict[str, list[dict]] = {m: [] for m in modes}
        print(f"load average {os.getloadavg()[0]:.2f}; {args.prompts} prompts x G={args.group}, "
              f"T={args.tokens}, {args.repeats} repeats", flush=True)
        for rep in range(args.repeats + 1):  # repeat 0 warms up
            for m in modes:
                r = run_mode(m, engine, samples, args.group, args.tokens, seed=rep)
                if rep:
                    results[m].append(r)
    base = statistics.median(r["wall_s"] for r in results["flat"])
    base_tok = statistics.median(r["decoded_tokens"] for r in results["flat"])
    print("\n| mode | median wall s | vs flat | decoded tokens | vs flat | rollouts | trained tokens | "
          "mean rollout tokens |\n|---|---|---|---|---|---|---|---|")
    summary = {}
    for m in modes:
        rs = results[m]
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        summary[m] = med
        print(f"| {m} | {med['wall_s']:.2f} | {med['wall_s'] / base:.2f}x | {med['decoded_tokens']:.0f} | "
              f"{med['decoded_tokens'] / base_tok:.2f}x | {med['rollouts']:.0f} | {med['trained_tokens']:.0f} | "
              f"{med['mean_rollout_tokens']:.1f} |")
    print(f"\nload average after {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results, "median": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
