"""``veripo model``: build the offline tiny-model kit, or inspect a checkpoint.

    veripo model build-tiny --out runs/tiny-kit [--hidden-size 128 --num-layers 2 ... --seed 0] [--corpus lines.txt]
                            [--real-ids [--real-vocab-size 152064]]   # the checkpoint's token ids
    veripo model info runs/tiny-kit            # parameter counts, vocabulary, special tokens, pixel budget
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

HELP = "Build the offline tiny Qwen2.5-VL model kit, or inspect a checkpoint."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from veripo.models.tiny import TinyModelSpec

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build-tiny", help="build tokenizer + processor + random-init tiny model (HF format)")
    build.add_argument("--out", required=True, help="output directory (replaced atomically if it exists)")
    build.add_argument("--corpus", default=None,
                       help="text file with extra tokenizer training lines (one per line), e.g. the task texts")
    for f in dataclasses.fields(TinyModelSpec):
        if f.type in (bool, "bool"):
            continue
        build.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=f.default,
                           help=f"{f.metadata.get('help', '')} (default: {f.default})")
    build.add_argument("--real-ids", dest="real_token_ids", action="store_true",
                       help="added tokens at the checkpoint's ids (<|im_end|> 151645 ...), vocabulary padded to "
                            "--real-vocab-size (151936 = 3B, 152064 = 7B)")
    info = sub.add_parser("info", help="print parameter counts, vocabulary and special tokens of a checkpoint")
    info.add_argument("path", help="checkpoint directory or hub id (must be cached when offline)")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if args.action == "build-tiny":
        return _build(args)
    return _info(args)


def _build(args: argparse.Namespace) -> int:
    from veripo.errors import VeripoError
    from veripo.models.tiny import TinyModelSpec, build_tiny_kit

    spec = TinyModelSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TinyModelSpec)})
    corpus = None
    if args.corpus:
        path = Path(args.corpus)
        if not path.exists():
            raise VeripoError(f"{path}: corpus file not found")
        corpus = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        out = build_tiny_kit(args.out, spec, corpus=corpus)
    except ValueError as e:
        raise VeripoError(f"invalid tiny-model spec: {e}") from e
    summary = summarize(out)
    print(f"built tiny model kit at {out}: {summary['params_total']:,} parameters, vocabulary {summary['vocab_size']}")
    return 0


def summarize(path: str | Path) -> dict:
    """Parameter counts (total / vision / language), vocabulary, special tokens, pixel budget of a checkpoint."""
    from veripo.models.load import load_policy
    from veripo.models.lora import is_vision_name

    model, processor = load_policy(str(path), dtype="float32", device="cpu")
    tokenizer = getattr(processor, "tokenizer", processor)
    total = sum(p.numel() for p in model.parameters())
    added = tokenizer.added_tokens_decoder
    vision = sum(p.numel() for n, p in model.named_parameters() if is_vision_name(n))
    summary = {
        "path": str(path),
        "model_class": type(model).__name__,
        "processor_class": type(processor).__name__,
        "params_total": total,
        "params_vision": vision,
        "params_language": total - vision,
        "vocab_size": len(tokenizer),
        "special_tokens": [t.content for _, t in sorted(added.items()) if t.special],
        "added_non_special_tokens": [t.content for _, t in sorted(added.items()) if not t.special],
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "padding_side": tokenizer.padding_side,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
    }
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is not None:
        size = video_processor.size
        get = (lambda k: size.get(k)) if isinstance(size, dict) else (lambda k: getattr(size, k, None))
        summary["video_min_pixels"] = get("shortest_edge")
        summary["video_max_pixels"] = get("longest_edge")
        summary["temporal_patch_size"] = video_processor.temporal_patch_size
    return summary


def _info(args: argparse.Namespace) -> int:
    summary = summarize(args.path)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for key, value in summary.items():
        if isinstance(value, int) and key.startswith("params"):
            value = f"{value:,}"
        print(f"{key:20s} {value}")
    return 0
