"""Session fixtures for the trainer tests: a small synthetic video task, a tiny kit whose tokenizer knows
the task's words, and a briefly warm-started policy (format learned) shared by GRPO / DPO / loop tests."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kit_fixtures import _CACHE, _root

VIDEO = ["video.num_frames=8", "video.min_pixels=3136", "video.max_pixels=3136"]
VIDEO_DICT = {"num_frames": 8, "min_pixels": 3136, "max_pixels": 3136}


def task_once() -> Path:
    if "task" not in _CACHE:
        from veripo.data.synthetic import SynthSpec, generate_task

        spec = SynthSpec(types=("color",), n_train=32, n_val=8, n_test=8, seed=0, flawed_inconsistent=0.0,
                         flawed_repetitive=0.0)
        _CACHE["task"] = generate_task(_root() / "task", spec, progress=False).root
    return _CACHE["task"]


def task_kit_once() -> Path:
    if "task_kit" not in _CACHE:
        from veripo.data.synthetic import SynthSpec, task_corpus
        from veripo.models.tiny import build_tiny_kit

        _CACHE["task_kit"] = build_tiny_kit(_root() / "task-kit", corpus=task_corpus(SynthSpec(types=("color",))))
    return _CACHE["task_kit"]


def warm_policy_once() -> Path:
    """60 SFT steps at lr 2e-3: the format is mostly learned (the colour not yet); the twin kit spells the tags in
    several BPE pieces, so this takes longer than with single-token tags."""
    if "warm" not in _CACHE:
        from veripo.config import load_config
        from veripo.sft import SFTConfig, train_sft

        task = task_once()
        cfg = load_config(SFTConfig, None, [f"model.path={task_kit_once()}", "model.freeze_vision=false",
                                            f"train_file={task / 'train.jsonl'}", f"run.out_dir={_root() / 'warm'}",
                                            "run.steps=60", "batch_size=16", "optim.lr=2e-3"] + VIDEO)
        _CACHE["warm"] = Path(train_sft(cfg)["final_policy"])
    return _CACHE["warm"]


def all_red_rows(dest: Path) -> Path:
    """Training rows whose answer is always A (red): a task the tiny model learns in a few GRPO steps."""
    task = task_once()
    rows = [json.loads(line) for line in (task / "train.jsonl").read_text().splitlines()]
    red = [r for r in rows if r["solution"] == "<answer>A</answer>"]
    for r in red:
        r["path"] = str(task / r["path"])
    dest.write_text("".join(json.dumps(r) + "\n" for r in red))
    return dest


@pytest.fixture(scope="session")
def synth_task() -> Path:
    return task_once()


@pytest.fixture(scope="session")
def task_kit() -> Path:
    return task_kit_once()


@pytest.fixture(scope="session")
def warm_policy() -> Path:
    return warm_policy_once()
