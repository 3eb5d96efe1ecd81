"""``veripo data``: generate the synthetic video task, validate a data file, convert Video-R1 JSON.

    veripo data synth --out runs/task [--seed 0 --n-train 256 --types color,direction --difficulty easy]
                      [--corpus runs/task/corpus.txt]   # tokenizer text for `veripo model build-tiny --corpus`
    veripo data validate runs/task/train.jsonl [--strict] [--check-videos]
    veripo data convert-video-r1 Video-R1-260k.json video_r1.jsonl [--video-root DIR] [--data-types video]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing

HELP = "Generate the synthetic video-reasoning task, validate a JSONL data file, or convert Video-R1 JSON."


def _add_spec_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`SynthSpec` field (``n_train`` -> ``--n-train``), help from the field's doc."""
    from veripo.data.synthetic import SynthSpec

    hints = typing.get_type_hints(SynthSpec)
    for f in dataclasses.fields(SynthSpec):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default: {f.default!r})"
        if hints[f.name] is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            list_hint = " Comma-separated." if typing.get_origin(hints[f.name]) is tuple else ""
            parser.add_argument(flag, dest=f.name, default=None, metavar="V", help=help_text + list_hint)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    synth = sub.add_parser("synth", help="write the synthetic task: videos/, train/val/test.jsonl, manifest.json",
                           description="Write the synthetic video task (idempotent: reruns with the same spec "
                                       "do nothing). Flags override the YAML given with --config.")
    synth.add_argument("--out", default=None, help="output folder (required unless --show-config)")
    synth.add_argument("--config", "-c", default=None, help="YAML file with SynthSpec fields")
    synth.add_argument("--force", action="store_true", help="rebuild even when the manifest matches")
    synth.add_argument("--corpus", default=None, metavar="FILE",
                       help="also write the task's text (prompts, options, every response kind), one line each: "
                            "the tokenizer corpus of `veripo model build-tiny --corpus FILE`")
    synth.add_argument("--show-config", action="store_true", help="print the SynthSpec fields and exit")
    _add_spec_flags(synth)

    val = sub.add_parser("validate", help="check a JSONL/JSON data file; list bad rows as file:line: why")
    val.add_argument("file", help="JSONL (or a JSON list, as Video-R1 ships)")
    val.add_argument("--strict", action="store_true", help="exit 1 when any row is bad")
    val.add_argument("--check-videos", action="store_true", help="open every video (PyAV) / image and report bad ones")
    val.add_argument("--root", default=None, help="folder that relative paths resolve against (default: the file's)")
    val.add_argument("--max-errors", type=int, default=50, help="bad rows to print (all are counted)")

    conv = sub.add_parser("convert-video-r1", help="convert Video-R1's JSON (as released) to our JSONL")
    conv.add_argument("input", help="Video-R1 JSON list (e.g. Video-R1-260k.json)")
    conv.add_argument("output", help="output JSONL")
    conv.add_argument("--video-root", default=None,
                      help="folder that Video-R1's relative paths resolve against (default: the input's folder)")
    conv.add_argument("--data-types", default=None, help="keep only these data types, e.g. 'video' or 'video,image'")
    conv.add_argument("--check-videos", action="store_true", help="set aside rows whose video/image does not open")
    conv.add_argument("--strict", action="store_true", help="exit 1 when any row was set aside")
    conv.add_argument("--max-errors", type=int, default=50, help="bad rows to print (all are counted)")


def _run_synth(args: argparse.Namespace) -> int:
    from veripo.config import ConfigError, describe, from_dict, merge, read_yaml
    from veripo.data.synthetic import SynthSpec, generate_task, write_corpus

    if args.show_config:
        print(describe(SynthSpec))
        return 0
    if not args.out:
        raise ConfigError("veripo data synth needs --out DIR")
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(SynthSpec) if getattr(args, f.name) is not None}
    spec = from_dict(SynthSpec, merge(read_yaml(args.config) if args.config else {}, flags))
    start = time.time()
    files = generate_task(args.out, spec, force=args.force)
    took = time.time() - start
    what = "up to date (manifest matches), nothing written" if files.reused else f"written in {took:.1f} s"
    print(f"synthetic task in {files.root}: {what}")
    for split, counts in files.counts.items():
        tasks = ", ".join(f"{k} {v}" for k, v in sorted(counts["tasks"].items()))
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(counts["response_kinds"].items()))
        print(f"  {split}: {counts['rows']} rows -> {files.splits[split]}  [{tasks}]  responses: {kinds}")
    print(f"  manifest: {files.manifest} (content hash {files.content_hash[:16]})")
    if args.corpus:
        n = write_corpus(args.corpus, spec)
        print(f"  tokenizer corpus: {n} lines -> {args.corpus} (veripo model build-tiny --corpus {args.corpus})")
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from veripo.data.convert import validate_file

    report = validate_file(args.file, check_videos=args.check_videos, root=args.root)
    print(report.summary(max_errors=args.max_errors))
    return 1 if args.strict and report.n_bad else 0


def _run_convert(args: argparse.Namespace) -> int:
    from veripo.data.convert import convert_video_r1

    types = tuple(t.strip() for t in args.data_types.split(",") if t.strip()) if args.data_types else None
    report = convert_video_r1(args.input, args.output, video_root=args.video_root, data_types=types,
                              check_videos=args.check_videos)
    print(report.summary(max_errors=args.max_errors))
    set_aside = f"; {report.n_bad} bad rows set aside" if report.n_bad else ""
    print(f"wrote {report.n_ok} rows to {args.output}{set_aside}")
    return 1 if args.strict and report.n_bad else 0


def run(args: argparse.Namespace) -> int:
    actions = {"synth": _run_synth, "validate": _run_validate, "convert-video-r1": _run_convert}
    return actions[args.action](args)


if __name__ == "__main__":  # pragma: no cover
    from veripo.cli import main

    sys.exit(main(["data", *sys.argv[1:]]))
