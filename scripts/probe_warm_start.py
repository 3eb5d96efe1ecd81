"""Probe: only the demo's task, kit and warm start (no loop) -- what SFT learns under a variant of the demo's config.

    .venv/bin/python scripts/probe_warm_start.py OUT STEPS [DemoConfig overrides ...]
    .venv/bin/python scripts/probe_warm_start.py runs/probe-direction 450 "task.types=[direction]" \
        task.flawed_inconsistent=0 task.flawed_repetitive=0 task.flawed_reflective=0

Prints the warm start's steps, its final val accuracy and the val curve (``OUT/sft/metrics.jsonl``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, steps, overrides = argv[0], argv[1], argv[2:]
    import veripo  # noqa: F401
    from veripo.demo.cli import prepare_run
    from veripo.demo.config import demo_config

    cfg = demo_config(False, [f"out_dir={out}", f"sft.run.steps={steps}", *overrides])
    prep = prepare_run(cfg, resume=True)
    rows = [json.loads(line) for line in (Path(out) / "sft" / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], round(r["val_accuracy"], 3)) for r in rows if r.get("val_accuracy") is not None]
    print(f"warm start: {prep['sft'].get('steps')} steps, val accuracy {prep['sft'].get('val_accuracy')}")
    print("val curve (step, accuracy):", curve)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
