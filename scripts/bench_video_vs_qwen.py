"""Benchmark: veripo's video preprocessing vs qwen-vl-utils 0.0.14 (``process_vision_info``, decord backend).

    python scripts/bench_video_vs_qwen.py [--repeats 3] [--grpo-steps 4] [--json out.json]

On the same mp4 files (veripo's synthetic task generator, ``data/synthetic.py``) and the same settings (a
qwen-vl-utils video item: ``nframes`` or ``fps``, ``min_pixels`` / ``max_pixels``; veripo reads the same item
with ``sampling_from_message``, as tests/test_video_qwen_parity.py does), per video:

* **first read**: ``qwen_vl_utils.process_vision_info`` (decode + resize) vs a cold ``FrameCache.get`` (an empty
  cache: decode + resize), both on decord, interleaved video by video;
* **cached read**: ``FrameCache.get`` on a warm cache vs ``process_vision_info`` again (it has no cache);
* **to model inputs**: the same two reads followed by the processor (``pixel_values_videos``), first and cached;
* **frames identical**: max |difference| between the two frame tensors (and equal indices and sizes);
* **a step's first reads as one batch**: ``process_vision_info`` on one message with every video of the case vs
  ``FrameCache.get_many`` on an empty cache (what ``build_prompt_batch`` calls: misses decoded side by side).

Then the share of a GRPO step that data loading takes: a few steps of veripo's ``GRPOTrainer`` on the tiny kit and
the synthetic video task (8 prompts x 8 rollouts x 40 tokens, the setting of bench_grpo_vs_trl.py), timing every
call of the rollout engine's ``prompt_batch`` (chat template + ``FrameCache.get`` + processor: all the data loading a
step does) and of ``FrameCache.get_many`` inside it, against the step's wall time. Each step draws new prompts, so
within the first epoch every video is a first read.

Figures are medians over ``--repeats`` passes (ms per video); ratios are qwen-vl-utils / veripo.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

# (case name, synthetic spec overrides, qwen-vl-utils video item options)
CASES = [
    ("tiny 56x56, 8 frames (demo)", {"size": 56, "frames": 8, "fps": 4.0},
     {"nframes": 8, "min_pixels": 3136, "max_pixels": 3136}),
    ("448x448 -> 308x308, 16 of 32 frames", {"size": 448, "frames": 32, "fps": 8.0},
     {"nframes": 16, "min_pixels": 3136, "max_pixels": 128 * 28 * 28}),
    ("448x448 native, 32 frames at fps 8", {"size": 448, "frames": 32, "fps": 8.0},
     {"fps": 8.0, "min_pixels": 3136, "max_pixels": 448 * 448}),
]


def make_videos(root: Path, spec_overrides: dict, n: int) -> list[Path]:
    """``n`` synthetic colour clips (lossless H.264 mp4) with the given size / frames / fps."""
    from veripo.data.synthetic import SynthSpec, generate_task

    spec = SynthSpec(n_train=n, n_val=0, n_test=0, types=("color",), **spec_overrides)
    files = generate_task(root, spec, progress=False)
    rows = [json.loads(line) for line in files.train.read_text().splitlines() if line.strip()]
    return [root / row["path"] for row in rows]


def qwen_read(path: Path, options: dict):
    """qwen-vl-utils' frames for one video item: (float tensor [T, C, H, W], metadata dict)."""
    import veripo  # noqa: F401  (torchvision shim, before qwen_vl_utils imports torchvision)
    import qwen_vl_utils

    item = {"type": "video", "video": str(path), **options}
    messages = [{"role": "user", "content": [item, {"type": "text", "text": "What colour is the square?"}]}]
    _, videos, _ = qwen_vl_utils.process_vision_info(messages, return_video_kwargs=True, return_video_metadata=True)
    (video, meta), = videos
    if meta.get("video_backend") != "decord":
        raise RuntimeError(f"qwen-vl-utils read {path} with {meta.get('video_backend')!r}, not decord "
                           "(set FORCE_QWENVL_VIDEO_READER=decord)")
    return video, meta


def veripo_read(cache, path: Path, options: dict):
    """veripo's clip for the same item through ``cache`` (a miss decodes on decord)."""
    from veripo.video.sampling import sampling_from_message

    return cache.get(path, sampling_from_message({"type": "video", "video": str(path), **options}))


def compare_frames(video, meta, clip) -> dict:
    """Equal indices and sizes, and the max |difference| of the pixel values (qwen's are uint8 values as floats)."""
    import numpy as np

    theirs = video.permute(0, 2, 3, 1).numpy()
    same_shape = theirs.shape == clip.frames.shape
    diff = float(np.abs(theirs - clip.frames.astype(np.float32)).max()) if same_shape else float("inf")
    return {"same_indices": clip.indices == list(meta["frames_indices"]), "same_shape": same_shape,
            "max_abs_diff": diff, "shape": list(clip.frames.shape)}


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_case(paths: list[Path], options: dict, repeats: int, processor=None) -> dict:
    """Per-video medians (ms) of qwen-vl-utils vs veripo, first and cached reads (and through ``processor`` if
    given), plus the frame comparison of every video."""
    from transformers.video_utils import VideoMetadata

    from veripo.video.cache import FrameCache
    from veripo.video.inputs import build_model_inputs, video_processor_kwargs

    t: dict[str, list[float]] = {k: [] for k in ("qwen", "ours_first", "ours_cached", "qwen_inputs",
                                                 "ours_first_inputs", "ours_cached_inputs")}
    checks = []
    text = None
    if processor is not None:
        item = {"type": "video", "video": str(paths[0]), **options}
        text = processor.apply_chat_template([{"role": "user", "content": [item, {"type": "text", "text": "?"}]}],
                                             tokenize=False, add_generation_prompt=True)

    def qwen_inputs(video, meta):
        return processor(text=[text], videos=[video], video_metadata=[VideoMetadata(**meta)], return_tensors="pt",
                         **video_processor_kwargs(processor))

    for rep in range(repeats):
        for path in paths:
            cache = FrameCache()
            dt, (video, meta) = _timed(lambda: qwen_read(path, options))
            t["qwen"].append(dt)
            dt, clip = _timed(lambda: veripo_read(cache, path, options))
            t["ours_first"].append(dt)
            dt, hit = _timed(lambda: veripo_read(cache, path, options))
            t["ours_cached"].append(dt)
            assert hit is clip and cache.hits == 1 and cache.misses == 1
            if rep == 0:
                checks.append(compare_frames(video, meta, clip))
            if processor is not None:
                t["qwen_inputs"].append(t["qwen"][-1] + _timed(lambda: qwen_inputs(video, meta))[0])
                dt, _ = _timed(lambda: build_model_inputs(processor, [text], [veripo_read(cache, path, options)]))
                t["ours_cached_inputs"].append(dt)
                t["ours_first_inputs"].append(t["ours_first"][-1] + dt - t["ours_cached"][-1])
    ms = {k: statistics.median(v) * 1e3 for k, v in t.items() if v}
    out = {"videos": len(paths), "repeats": repeats, "ms": ms, "checks": checks,
           "max_abs_diff": max(c["max_abs_diff"] for c in checks),
           "identical": all(c["same_indices"] and c["same_shape"] and c["max_abs_diff"] == 0 for c in checks),
           "first_ratio": ms["qwen"] / ms["ours_first"], "cached_ratio": ms["qwen"] / ms["ours_cached"]}
    if processor is not None:
        out["first_inputs_ratio"] = ms["qwen_inputs"] / ms["ours_first_inputs"]
        out["cached_inputs_ratio"] = ms["qwen_inputs"] / ms["ours_cached_inputs"]
    return out


def bench_batch(paths: list[Path], options: dict, repeats: int) -> dict:
    """A step's first reads as one batch: qwen-vl-utils' ``process_vision_info`` on one message holding every video
    (its batch API: the videos are read one after another) vs veripo's ``FrameCache.get_many`` on an empty cache
    (``build_prompt_batch``'s call: the misses decoded side by side, one thread per usable core). ms per video,
    median over ``repeats``; frames compared video by video."""
    import veripo  # noqa: F401
    import qwen_vl_utils

    from veripo.video.cache import FrameCache, default_workers
    from veripo.video.sampling import sampling_from_message

    items = [{"type": "video", "video": str(p), **options} for p in paths]
    messages = [{"role": "user", "content": [*items, {"type": "text", "text": "?"}]}]
    requests = [(p, sampling_from_message(item)) for p, item in zip(paths, items)]
    theirs, ours = [], []
    for _ in range(repeats):
        dt, (_, videos, _) = _timed(lambda: qwen_vl_utils.process_vision_info(
            messages, return_video_kwargs=True, return_video_metadata=True))
        theirs.append(dt / len(paths))
        dt, clips = _timed(lambda: FrameCache().get_many(requests))
        ours.append(dt / len(paths))
    checks = [compare_frames(video, meta, clip) for (video, meta), clip in zip(videos, clips)]
    ms = {"qwen_batch": statistics.median(theirs) * 1e3, "ours_batch": statistics.median(ours) * 1e3}
    return {"videos": len(paths), "workers": default_workers(), "ms": ms, "ratio": ms["qwen_batch"] / ms["ours_batch"],
            "identical": all(c["same_indices"] and c["same_shape"] and c["max_abs_diff"] == 0 for c in checks)}


def processor_for():
    """A Qwen2.5-VL processor (the tiny kit's, checkpoint-twin settings) whose own resize is the identity here."""
    from veripo.models.tiny import TinyModelSpec, build_processor
    from veripo.models.tokenizer import train_tokenizer

    spec = TinyModelSpec.checkpoint_twin()
    return build_processor(train_tokenizer(None), spec)


# -------------------------------------------------------------------------------------------- GRPO share
def grpo_share(work: Path, steps: int, prompts: int = 8, group: int = 8, tokens: int = 40) -> dict:
    """Data loading's share of a tiny-model video GRPO step (see the module doc)."""
    import torch

    from veripo.config import load_config
    from veripo.data.synthetic import SynthSpec, generate_task, task_corpus
    from veripo.grpo.config import GRPOConfig
    from veripo.grpo.trainer import GRPOTrainer
    from veripo.models import build_tiny_kit

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    spec = SynthSpec(n_train=max(64, prompts * steps), n_val=2, n_test=2, types=("color",))
    files = generate_task(work / "task", spec, progress=False)
    kit = build_tiny_kit(work / "kit", corpus=task_corpus(spec))
    cfg = load_config(GRPOConfig, None, [
        f"model.path={kit}", "model.device=cpu", f"data.train_file={files.train}",
        f"rollout.prompts_per_step={prompts}", f"rollout.group_size={group}", f"rollout.max_new_tokens={tokens}",
        f"rollout.batch_size={prompts}", "rollout.temperature=1.0", "algo.beta=0.0", "optim.micro_batch_size=16",
        "video.num_frames=8", "video.min_pixels=3136", "video.max_pixels=3136",  # the demo's frames: 56x56
        f"run.steps={steps}", "run.save_every=0", "run.tensorboard=false", f"run.out_dir={work / 'run'}",
    ])
    trainer = GRPOTrainer(cfg)
    engine, cache = trainer.engine, trainer.engine.frame_cache
    spent = {"prompt_batch": [], "frames": [], "step": []}

    def timing(fn, key):
        def wrapped(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key][-1] += time.perf_counter() - t
        return wrapped

    engine.prompt_batch = timing(engine.prompt_batch, "prompt_batch")  # partial_batch calls it too
    cache.get_many = timing(cache.get_many, "frames")  # the wall time of each batch's reads
    inner = trainer.step

    def step(*a, **k):
        for key in spent:
            spent[key].append(0.0)
        t = time.perf_counter()
        out = inner(*a, **k)
        spent["step"][-1] = time.perf_counter() - t
        return out

    trainer.step = step
    trainer.train()
    later = slice(1, None) if steps > 1 else slice(None)  # step 1 is warm-up
    med = {k: statistics.median(v[later]) for k, v in spent.items()}
    return {"steps": steps, "prompts": prompts, "group": group, "tokens": tokens, "per_step_s": spent,
            "median_step_s": med["step"], "median_prompt_batch_s": med["prompt_batch"],
            "median_frames_s": med["frames"], "share": med["prompt_batch"] / med["step"],
            "frames_share": med["frames"] / med["step"], "cache": cache.stats()}


# ------------------------------------------------------------------------------------------------ report
def report(cases: dict, share: dict | None) -> str:
    lines = ["| case | videos | qwen-vl-utils ms | veripo first ms | ratio | veripo cached ms | ratio | "
             "to inputs: first ratio | cached ratio | max abs diff |", "|---" * 10 + "|"]
    for name, r in cases.items():
        ms = r["ms"]
        lines.append(f"| {name} | {r['videos']} | {ms['qwen']:.2f} | {ms['ours_first']:.2f} | "
                     f"**{r['first_ratio']:.2f}x** | {ms['ours_cached']:.4f} | **{r['cached_ratio']:.0f}x** | "
                     f"{r.get('first_inputs_ratio', float('nan')):.2f}x | "
                     f"{r.get('cached_inputs_ratio', float('nan')):.1f}x"
                     f" | {r['max_abs_diff']:g}{'' if r['identical'] else ' (NOT identical)'} |")
    lines += ["", "A step's first reads as one batch (qwen-vl-utils: one message with every video; veripo: "
              "FrameCache.get_many, one decode thread per usable core):", "",
              "| case | videos | decode threads | qwen-vl-utils ms/video | veripo ms/video | ratio | frames identical |",
              "|---" * 7 + "|"]
    for name, r in cases.items():
        b = r["batch"]
        lines.append(f"| {name} | {b['videos']} | {b['workers']} | {b['ms']['qwen_batch']:.2f} | "
                     f"{b['ms']['ours_batch']:.2f} | **{b['ratio']:.2f}x** | {'yes' if b['identical'] else 'NO'} |")
    if share:
        lines.append("")
        lines.append(f"GRPO step ({share['prompts']} x {share['group']} x {share['tokens']}, median of steps 2..."
                     f"{share['steps']}): {share['median_step_s']:.3f} s; data loading (prompt_batch) "
                     f"{share['median_prompt_batch_s'] * 1e3:.1f} ms = **{100 * share['share']:.2f}%**, "
                     "of which frames "
                     f"(FrameCache.get_many) {share['median_frames_s'] * 1e3:.1f} ms = {100 * share['frames_share']:.2f}%; "
                     f"cache {share['cache']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")  # before qwen_vl_utils is imported
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--videos", type=int, default=8, help="clips per case (the tiny case gets 2x as many)")
    p.add_argument("--grpo-steps", type=int, default=4, help="0 skips the GRPO share")
    p.add_argument("--work", default=None, help="where the videos go (default: a temporary folder)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import veripo  # noqa: F401  (torchvision shim first)

    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        processor = processor_for()
        cases = {}
        for i, (name, spec, options) in enumerate(CASES):
            n = args.videos * (2 if spec["size"] <= 64 else 1)
            paths = make_videos(work / f"case{i}", spec, n)
            cases[name] = bench_case(paths, options, args.repeats, processor)
            cases[name]["batch"] = bench_batch(paths, options, args.repeats)
            print(f"{name}: {json.dumps({k: v for k, v in cases[name].items() if k != 'checks'})}", flush=True)
        share = grpo_share(work / "grpo", args.grpo_steps) if args.grpo_steps else None
    print(f"load average at end: {os.getloadavg()}")
    print(report(cases, share))
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": cases, "grpo": share, "load": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
