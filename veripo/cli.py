"""The ``veripo`` command: one entry point, one sub-command per stage.

Each sub-command lives in its own module, imported only when that sub-command runs (so ``veripo --help``
is instant and the CPU path never imports vLLM or DeepSpeed). A command module provides

    HELP: str                                   # one line, shown in ``veripo --help``
    def add_arguments(parser) -> None           # its flags
    def run(args) -> int                        # the work; returns the exit code

Stage commands share the config flags added by :func:`add_config_arguments`:
``--config FILE.yaml``, dotted overrides as trailing ``key.sub=value`` words, and ``--show-config``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from veripo.errors import VeripoError

# name -> (module, one-line help). Modules are imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("veripo.demo.cli", "Run the whole VerIPO method on synthetic videos with a tiny model (the main job)."),
    "data": ("veripo.data.cli", "Generate the synthetic video-reasoning task, or validate a JSONL data file."),
    "model": ("veripo.models.cli", "Build the offline tiny Qwen2.5-VL model kit, or inspect a checkpoint."),
    "sft": ("veripo.sft", "Supervised warm start on JSONL rows with target responses."),
    "grpo": ("veripo.grpo.cli", "GRPO stage: sample G rollouts per video question, reward, update; writes rollouts.jsonl."),
    "verify": ("veripo.verifier.cli", "Rollout-Aware Verifier: judge rollouts and build pairs.jsonl (in-process or via a service)."),
    "serve-verifier": ("veripo.verifier.service_cli", "Serve the verifier over HTTP (FastAPI): /v1/verify, /v1/pairs, /health, /metrics."),
    "serve-judge": ("veripo.verifier.judge_server_cli", "Serve a local Hugging Face model as an OpenAI-compatible /v1/chat/completions judge."),
    "dpo": ("veripo.dpo.cli", "DPO stage: train on pairs.jsonl with any preference loss (or a weighted mix)."),
    "loop": ("veripo.loop.cli", "Iterate GRPO -> verify -> DPO N times from one YAML config; resumable."),
    "eval": ("veripo.eval.cli", "Video benchmark harness: run a model, score predictions, report."),
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every config-driven stage takes."""
    parser.add_argument("--config", "-c", default=None, help="YAML config file (fields: see --show-config)")
    parser.add_argument("--show-config", action="store_true",
                        help="print every config field with its type, default and meaning, then exit")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="dotted config overrides applied after the YAML file, e.g. optim.lr=2e-4")


def config_from_args(args, cls):
    """The stage's config from ``--config`` + dotted overrides; ``None`` after printing ``--show-config``."""
    from veripo.config import describe, load_config

    if args.show_config:
        print(describe(cls))
        return None
    import logging

    from veripo.config import check_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(cls, args.config, args.overrides)  # keys and value rules
    check_config(cfg, inputs=True)  # and the files the command reads, before any model is loaded
    return cfg


def add_stage_arguments(parser: argparse.ArgumentParser, out_dir_key: str) -> None:
    """The flags of a resumable training stage: the config flags, ``--resume`` and ``--force-config``."""
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true", help=f"continue from the newest checkpoint in {out_dir_key}")
    parser.add_argument("--force-config", action="store_true",
                        help="with --resume: accept a config that differs from the run's saved config.yaml "
                             "(without it such a resume is refused, naming the changed keys)")


def run_stage(args, cfg_cls, trainer: str, bad_input: str) -> int:
    """What every resumable training stage's command does: its config from the flags, the trainer
    (``"module:Class"``, imported only now), a line per input row it set aside (also written to
    ``<out dir>/rejects.jsonl``), training (``--resume``; ``--force-config`` is handed to the trainer as its
    ``force_config`` attribute), then the summary as JSON. Under torchrun only rank 0 prints (trainers expose
    ``is_main`` and ``bad_inputs``)."""
    import importlib
    import json

    cfg = config_from_args(args, cfg_cls)
    if cfg is None:
        return 0
    module, name = trainer.split(":")
    stage = getattr(importlib.import_module(module), name)(cfg)
    stage.force_config = bool(getattr(args, "force_config", False))
    if stage.is_main:
        from veripo.io_utils import write_rejects

        for err in stage.bad_inputs:
            print(f"{bad_input} skipped: {err}")
        out_dir = getattr(getattr(cfg, "run", None), "out_dir", None) or getattr(cfg, "out_dir", None)
        rejects = write_rejects(out_dir, stage.bad_inputs) if out_dir else None
        if rejects:
            print(f"{len(stage.bad_inputs)} {bad_input}(s) set aside: see {rejects}")
    summary = stage.train(resume=args.resume)
    if stage.is_main:
        print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="veripo",
        description="VerIPO trainer for Video-LLMs: GRPO -> Rollout-Aware Verifier -> DPO, iterated.",
        epilog="Run 'veripo COMMAND --help' for a command's flags; 'veripo COMMAND --show-config' for its config fields.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _load_command(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(module_name)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    if argv[0] == "--version":
        from veripo import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.print_usage(sys.stderr)
        print(f"veripo: unknown command {name!r}; choose from: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = _load_command(name)
    parser = argparse.ArgumentParser(prog=f"veripo {name}", description=module.HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        from veripo.train.threads import apply_threads

        apply_threads(announce=False)  # torch's thread counts from the cores really available (a training stage
        # logs the choice when it starts; an error before that stays one line)
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"veripo {name}: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `veripo ... --show-config | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python docs' recipe: no second error at exit
        return 0
    except VeripoError as e:  # a user error (bad config, path, data row, kwargs): one line, exit 2
        print(f"veripo {name}: error: {one_line(e)}", file=sys.stderr)
        return 2


def one_line(error: BaseException) -> str:
    """The error's message on one line (a multi-line message from a library is joined with " | ")."""
    return " | ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
