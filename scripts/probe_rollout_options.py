"""Probe: what the GRPO rollout options do on a task the tiny model can learn, one seed each.

    python scripts/probe_rollout_options.py [--steps 24] [--modes flat,tree,arrol-proxy,arrol-learned]

Setup (about 20 s): the synthetic colour task, a tiny kit whose tokenizer knows its words, a 40-step SFT warm
start (format learned, colour not yet), and the training rows whose answer is "A" (red): the accuracy reward
can teach the policy that prior within a few dozen steps. Then, per mode, ``--steps`` GRPO steps of 4 prompts x 8
rollouts, T = 1.0, lr 3e-4, at most 40 new tokens:

* ``flat``           8 independent rollouts per prompt, GRPO advantages;
* ``tree``           ``rollout.tree_branches=[2,2,2]``, 8-token segments, ``branch`` advantages;
* ``arrol-proxy``    ARRoL mid-generation pruning of a 16-rollout pool after 8 tokens, the proxy head;
* ``arrol-learned``  the same with the learned head on the policy's hidden states.

Printed per mode: wall and generation seconds, mean accuracy of the first and last 5 steps, the tree's decode
saving, and for ARRoL the running AUC of the head and the steps it was trusted.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

MODES = {
    "flat": [],
    "tree": ["rollout.tree_branches=[2,2,2]", "rollout.tree_segment_tokens=8", "algo.advantage_estimator=branch"],
    "arrol-proxy": ["rollout.prune=arrol", "rollout.prune_kwargs={prefix_tokens: 8, mode: midgen, head: proxy}"],
    "arrol-learned": ["rollout.prune=arrol", "rollout.prune_kwargs={prefix_tokens: 8, mode: midgen, head: learned}"],
}
VIDEO = ["video.num_frames=8", "video.min_pixels=3136", "video.max_pixels=3136"]


def prepare(work: Path) -> tuple[Path, Path]:
    """(warm-started policy, rows answered 'A')."""
    import veripo  # noqa: F401  (torchvision shim)
    from veripo.config import load_config
    from veripo.data.synthetic import SynthSpec, generate_task, task_corpus
    from veripo.models.tiny import build_tiny_kit
    from veripo.sft import SFTConfig, train_sft

    spec = SynthSpec(types=("color",), n_train=32, n_val=8, n_test=8, seed=0, flawed_inconsistent=0.0,
                     flawed_repetitive=0.0)
    task = generate_task(work / "task", spec, progress=False).root
    kit = build_tiny_kit(work / "kit", corpus=task_corpus(SynthSpec(types=("color",))))
    cfg = load_config(SFTConfig, None, [f"model.path={kit}", "model.freeze_vision=false",
                                        f"train_file={task / 'train.jsonl'}", f"out_dir={work / 'warm'}", "steps=40",
                                        "batch_size=16", "optim.lr=1e-3"] + VIDEO)
    warm = Path(train_sft(cfg)["final_policy"])
    rows = [json.loads(line) for line in (task / "train.jsonl").read_text().splitlines()]
    red = [dict(r, path=str(task / r["path"])) for r in rows if r["solution"] == "<answer>A</answer>"]
    (work / "red.jsonl").write_text("".join(json.dumps(r) + "\n" for r in red))
    return warm, work / "red.jsonl"


def run_mode(mode: str, warm: Path, rows: Path, out: Path, steps: int) -> dict:
    import torch

    from veripo.config import load_config
    from veripo.grpo.config import GRPOConfig
    from veripo.grpo.trainer import GRPOTrainer
    from veripo.io_utils import read_jsonl

    torch.manual_seed(0)
    cfg = load_config(GRPOConfig, None, [
        f"model.path={warm}", "model.freeze_vision=false", f"data.train_file={rows}", f"run.out_dir={out}",
        "rollout.prompts_per_step=4", "rollout.group_size=8", "rollout.max_new_tokens=40", "rollout.temperature=1.0",
        "run.tensorboard=false", "optim.lr=3e-4", "optim.micro_batch_size=32", f"run.steps={steps}",
        "run.save_every=0", *VIDEO, *MODES[mode]])
    t0 = time.perf_counter()
    GRPOTrainer(cfg).train()
    ms = read_jsonl(out / "metrics.jsonl")
    acc = [m["reward/accuracy"] for m in ms]
    return {"wall_s": time.perf_counter() - t0, "generate_s": sum(m["time/generate_s"] for m in ms),
            "first5": sum(acc[:5]) / 5, "last5": sum(acc[-5:]) / 5,
            "decode_saving": sum(m.get("tree/decode_saving", 0.0) for m in ms) / len(ms),
            "auc": [m.get("prune/head_auc") for m in ms],
            "trusted_steps": [i for i, m in enumerate(ms) if m.get("prune/head_trusted")]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown or args.steps < 5:
        ap.error(f"modes must be among {', '.join(MODES)} and --steps >= 5 (got {unknown}, {args.steps})")
    with tempfile.TemporaryDirectory() as tmp:
        warm, rows = prepare(Path(tmp))
        for mode in modes:
            r = run_mode(mode, warm, rows, Path(tmp) / mode, args.steps)
            line = (f"{mode:14s} wall {r['wall_s']:5.1f} s  generate {r['generate_s']:5.1f} s  "
                    f"accuracy first5 {r['first5']:.3f} last5 {r['last5']:.3f}")
            if mode == "tree":
                line += f"  decode saving {r['decode_saving']:.2f}"
            if mode.startswith("arrol"):
                auc = " ".join("-" if a is None else f"{a:.2f}" for a in r["auc"])
                line += f"\n{'':14s} head AUC by step: {auc}\n{'':14s} trusted at steps {r['trusted_steps']}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
