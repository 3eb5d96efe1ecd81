"""No import points up a layer: each package imports only from its own layer or the ones below it.

    0  errors, config, io_utils, options, redact        (plain helpers)
    1  algos, video, models, data, records, prompts     (pure tensor functions, video, checkpoints, rows, the file
                                                         records and the prompt text of a row)
    2  rewards, prompt_batch, prompt_cache, prompt_sharing, sequences, generation   (scores, model inputs,
                                                         sampling completions)
    3  train                                            (optimiser, checkpoints, processes, the stage skeleton)
    4  rollout, verifier                                (the GRPO rollout phase and its engines; the verifier)
    5  grpo, dpo, sft, eval                             (the stages and the harness)
    6  loop
    7  demo
Command modules (``veripo/cli.py`` and each ``cli.py`` / ``*_cli.py``) sit on top of everything.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "errors": 0, "config": 0, "io_utils": 0, "_torchvision_shim": 0, "options": 0, "redact": 0,
    "algos": 1, "video": 1, "models": 1, "data": 1, "records": 1, "prompts": 1,
    "rewards": 2, "prompt_batch": 2, "prompt_cache": 2, "prompt_sharing": 2, "sequences": 2, "generation": 2,
    "train": 3,
    "rollout": 4, "verifier": 4,
    "grpo": 5, "dpo": 5, "sft": 5, "eval": 5,
    "loop": 6,
    "demo": 7,
}
FOLDERS = {"veripo": None, "verifier": "verifier", "eval": "eval", "data": "data"}


def unit_of(path: Path) -> str | None:
    rel = path.relative_to(ROOT)
    if rel.parts[0] in ("verifier", "eval", "data"):
        return rel.parts[0]
    if rel.parts[0] == "veripo" and len(rel.parts) > 1:
        return Path(rel.parts[1]).stem if len(rel.parts) == 2 else rel.parts[1]
    return None


def imported_units(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "veripo" and len(parts) > 1:
                out.add(parts[1])
    return out


def test_no_import_points_up_a_layer():
    upward = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "cli.py" or path.name.endswith("_cli.py") or path.name == "__init__.py":
                continue
            unit = unit_of(path)
            if unit not in LAYERS:
                continue
            for target in imported_units(ast.parse(path.read_text())):
                if target in LAYERS and LAYERS[target] > LAYERS[unit]:
                    upward.append(f"{path.relative_to(ROOT)} ({unit}, layer {LAYERS[unit]}) imports veripo.{target} "
                                  f"(layer {LAYERS[target]})")
    assert not upward, "\n".join(upward)


def test_every_package_has_a_layer():
    units = {unit_of(p) for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}
    missing = sorted(u for u in units - set(LAYERS) - {None, "cli", "__init__"})
    assert not missing, f"give these a layer in LAYERS: {missing}"


def test_sft_and_dpo_do_not_import_the_rollout_phase():
    """SFT and DPO train on given responses: what they generate (SFT's greedy held-out check) goes through
    ``veripo.generation``, never through the GRPO rollout package."""
    paths = [ROOT / "veripo" / "sft.py", *sorted((ROOT / "veripo" / "dpo").rglob("*.py"))]
    found = [str(p.relative_to(ROOT)) for p in paths if "rollout" in imported_units(ast.parse(p.read_text()))]
    assert not found, f"these import veripo.rollout: {found}"
