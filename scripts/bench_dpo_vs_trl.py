"""Benchmark: our DPO step vs TRL 1.16's ``DPOTrainer`` on the same tiny model and pairs, plus our video DPO step.

    python scripts/bench_dpo_vs_trl.py [--steps 8] [--pairs 16] [--json out.json]

Three runs, each in its own subprocess (peak RSS per run), all from the same synthetic colour task and tiny kit
(``bench_grpo_vs_trl.prepare``): chosen = the correct templated answer, rejected = a wrong one
(``veripo.data.templates``), ``--pairs`` pairs per optimiser step in micro-batches of 8 pairs (16 sequences):

* ``ours-text``  veripo ``DPOTrainer`` on text-only pairs (TRL's DPO cannot feed video tensors);
* ``trl-text``   TRL ``DPOTrainer`` on the same pairs as conversational prompt / chosen / rejected, loss
                 ``sigmoid``, beta 0.1, lr 1e-6, reference log-probs precomputed (``precompute_ref_log_probs``),
                 as ours caches them before training;
* ``ours-video`` veripo ``DPOTrainer`` on the same pairs with their 8-frame 56x56 videos.

Seconds per step are the median of steps 2..N (between consecutive optimiser steps; the reference pass is done
before the first). Tokens per step (prompt + response, both sides, padding excluded) are reported because the two
chat templates differ in length.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_grpo_vs_trl import prepare, run_worker, step_stats, worker  # noqa: E402  (shared set-up, workers)

RUNS = ("ours-text", "trl-text", "ours-video", "ours-unshared-text")


def pair_rows(data_file: str, n: int) -> list[dict]:
    from veripo.data.schema import load_samples
    from veripo.data.templates import correct_response, wrong_response

    rng = random.Random(0)
    samples = load_samples(data_file)[:n]
    return [{"sample": s, "chosen": correct_response(s), "rejected": wrong_response(s, rng)} for s in samples]


def step_clock(marks: list[float]):
    def wrap(fn):
        def timed(*a, **k):
            out = fn(*a, **k)
            marks.append(time.perf_counter())
            return out
        return timed
    return wrap


def sized_ids(tokenizer, text: str, n: int) -> list[int]:
    """``text``'s tokens repeated or cut to ``n`` tokens, the last one the response end token."""
    from veripo.models.tokenizer import response_end_id

    ids = tokenizer.encode(text, add_special_tokens=False)
    return (ids * (n // len(ids) + 1))[: n - 1] + [response_end_id(tokenizer)]


def run_ours(args, data_file: str, out_dir: Path, overrides: tuple[str, ...] = (),
             response_tokens: int | None = None) -> dict:
    """Our DPO run; ``overrides``: extra config settings; ``response_tokens``: every chosen and rejected response
    is given as exactly that many token ids (its templated text repeated or cut), instead of as text."""
    import torch

    torch.set_num_threads(getattr(args, "threads", 2))
    from veripo.config import load_config
    from veripo.dpo.config import DPOConfig
    from veripo.dpo.trainer import DPOTrainer
    from veripo.models.load import load_processor
    from veripo.records import PairRecord

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = pair_rows(data_file, args.pairs * 2)
    tok = load_processor(args.kit).tokenizer if response_tokens else None
    ids = (lambda text: sized_ids(tok, text, response_tokens)) if tok else (lambda text: None)
    pairs_file = out_dir / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(PairRecord(
        pair_id=f"p{i:03d}", prompt_id=r["sample"].problem_id, kind="quality", sample=r["sample"],
        prompt=r["sample"].problem, chosen=r["chosen"], rejected=r["rejected"], chosen_ids=ids(r["chosen"]),
        rejected_ids=ids(r["rejected"])).to_dict()) + "\n" for i, r in enumerate(rows)))
    t0 = time.perf_counter()
    cfg = load_config(DPOConfig, None, [
        f"model.path={args.kit}", "model.device=cpu", f"pairs_file={pairs_file}", f"run.out_dir={out_dir / 'run'}",
        f"batch_size={args.pairs}", f"epochs={args.steps / 2}", "heldout_fraction=0", "run.tensorboard=false",
        "run.save_every=0", "loss.names=[sigmoid]", "loss.beta=0.1", "optim.lr=1e-6", "optim.micro_batch_size=16",
        "video.num_frames=8", "video.min_pixels=3136", "video.max_pixels=3136", *overrides])
    trainer = DPOTrainer(cfg)
    init_s = time.perf_counter() - t0
    marks: list[float] = []
    tokens: list[int] = []
    trainer.train_engine.step = step_clock(marks)(trainer.train_engine.step)
    make_batch = trainer._pair_batch

    def counted(pairs, revision=False):
        batch = make_batch(pairs, revision)
        tokens.append(int(batch.model_inputs["attention_mask"].sum()))
        return batch

    reference_pass = trainer._reference_pass

    def then_count() -> None:  # count the training steps' sequences only, not the reference pass's
        reference_pass()
        trainer._pair_batch = counted

    trainer._reference_pass = then_count
    trainer.train()
    per_step = sum(tokens) / max(1, len(marks))
    return {"init_s": init_s, "step_s": [b - a for a, b in zip(marks, marks[1:])], "tokens_per_step": per_step}


def run_trl(args, data_file: str, out_dir: Path) -> dict:
    import torch

    torch.set_num_threads(2)
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer as TRLTrainer

    from veripo.models.load import load_policy
    from veripo.prompts import question_text

    t0 = time.perf_counter()
    model, processor = load_policy(args.kit, device="cpu")
    rows = pair_rows(data_file, args.pairs * 2)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": question_text(r["sample"])}],
                               "chosen": [{"role": "assistant", "content": r["chosen"]}],
                               "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    marks: list[float] = []
    tokens: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            marks.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "num_tokens" in logs:
                tokens.append(float(logs["num_tokens"]))

    config = TRLConfig(output_dir=str(out_dir), use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
                       per_device_train_batch_size=8, gradient_accumulation_steps=args.pairs // 8,
                       max_steps=args.steps, learning_rate=1e-6, beta=0.1, loss_type=["sigmoid"],
                       precompute_ref_log_probs=True, gradient_checkpointing=False, disable_tqdm=True, seed=0)
    trainer = TRLTrainer(model=model, args=config, train_dataset=data, processing_class=processor.tokenizer,
                         callbacks=[Clock()])
    init_s = time.perf_counter() - t0
    trainer.train()
    return {"init_s": init_s, "step_s": [b - a for a, b in zip(marks, marks[1:])],
            "tokens_per_step": (tokens[-1] / len(tokens)) if tokens else float("nan")}


def spawn(name: str, args, paths: dict[str, str]) -> dict:
    result = run_worker(__file__, name, args, paths, ["--pairs", str(args.pairs)])
    result.update(step_stats(result["step_s"]))  # already steps 2..N: times between optimiser steps
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="optimiser steps per run (the first is not timed)")
    ap.add_argument("--pairs", type=int, default=16, help="pairs per optimiser step (a multiple of 8)")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--worker", choices=RUNS, help=argparse.SUPPRESS)
    for name in ("--kit", "--text-file", "--video-file"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args, run_ours, run_trl)
        return 0
    if args.pairs % 8 or args.steps < 3:
        ap.error("--pairs must be a multiple of 8 and --steps >= 3")
    with tempfile.TemporaryDirectory(prefix="veripo-bench-dpo-") as tmp:
        args.work = tmp
        paths = prepare(Path(tmp), n_rows=args.pairs * 2)
        print(f"load average {os.getloadavg()}", flush=True)
        results = {name: spawn(name, args, paths) for name in RUNS}
    print(f"\nDPO step, {args.pairs} pairs (8 per micro-batch), steps 2..{args.steps}")
    print(f"{'run':12s} {'median s':>9s} {'min s':>7s} {'mean s':>7s} {'tokens/step':>12s} {'peak RSS MB':>12s} "
          f"{'init s':>7s}")
    for name, r in results.items():
        print(f"{name:12s} {r['s_per_step']:9.3f} {r['s_per_step_min']:7.3f} {r['s_per_step_mean']:7.3f} "
              f"{r['tokens_per_step']:12.0f} {r['peak_rss_mb']:12.0f} {r['init_s']:7.2f}")
    ours, trl = results["ours-text"], results["trl-text"]
    print(f"ratio TRL / ours (text): median {trl['s_per_step'] / ours['s_per_step']:.2f}x, "
          f"tokens per step {trl['tokens_per_step'] / ours['tokens_per_step']:.2f}x")
    plain = results["ours-unshared-text"]
    print(f"shared prompts (text): median {plain['s_per_step'] / ours['s_per_step']:.2f}x faster than unshared")
    print(f"load average after {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
