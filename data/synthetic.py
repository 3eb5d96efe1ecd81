"""The synthetic video-reasoning task: tiny mp4 clips of coloured squares with verifiable answers.

Each clip is ``frames`` frames of ``size``x``size`` pixels: a dark grey background (a random level per clip)
with uniform pixel noise, and one or two coloured squares. The settings that a 0.6 M-parameter model can
learn on 2 CPU cores (notes/learning-probe.md) are the defaults: 8 frames, 56x56, 24x24 square, noise
+-10, crf 0 (lossless), 4 fps (so ``second_per_grid_ts`` = temporal_patch 2 / 4 fps = 0.5).

Tasks (``SynthSpec.types``); the answer of every row is a fact the video was drawn from (``meta``):

==========  =================  ==============================================================================
task        problem_type       the clip and the question
==========  =================  ==============================================================================
color       multiple choice    one red/green/blue/yellow square drifting slowly: "What colour is the square?"
direction   multiple choice    a square sweeping edge to edge: left / right / up / down
order       multiple choice    two squares of different colours, each flashing in one frame pair (aligned to
                               temporal patch 2), at different times: which colour appears first?
count       numerical          the square flashes (visible for one frame) in 1..frames/2 of the frame pairs,
                               never in two adjacent frames: how many times does it flash?
size        regression         one square of even side ``size/8``..``size/2``: its side in pixels (scored by MRA)
distance    regression         a square moving horizontally: how many pixels it moves, first to last frame
==========  =================  ==============================================================================

Squares start on even pixel coordinates and have even sides, so their edges fall on the 2x2 chroma
grid of yuv420p and stay sharp after encoding: sizes and distances can be read back to the pixel.
Multiple-choice answers and counts are balanced within each split (cycled, then the rows are shuffled).
Difficulty (``easy``/``medium``/``hard``) scales the noise (x1, x1.5, x2.5), the drift of the colour and
size squares (1, 2, 4 px/frame at most) and the square side of the colour/direction/order/count clips
(x1, x0.75, x0.5). What the demo's 0.6M-parameter kit learns on 2 CPU cores (notes/learning-probe.md,
``veripo demo``): colour, direction and order; counting stayed at chance (one constant answer), size and
distance (regression) were not tried at that scale.

Rows follow :mod:`veripo.data.schema` (Video-R1 compatible, relative video paths) and add ``task``,
``split``, ``difficulty``, ``meta`` (the ground truth facts) and ``response_kind`` (``correct`` or one of
the deliberately flawed or reflective kinds of :mod:`veripo.data.templates`; only train rows get them).

Everything is a pure function of the spec: one ``numpy`` generator per (seed, split, row), so the same
spec gives the same rows and the same video bytes. :func:`generate_task` is idempotent: when
``manifest.json`` holds the same spec and the files on disk still hash to its ``content_hash``, it
does nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from veripo.config import ConfigError, doc, to_dict
from veripo.data import templates as T
from veripo.data.schema import Sample
from veripo.io_utils import atomic_write_json, atomic_write_text

TASKS = tuple(T.PROBLEM_TYPES)
SPLITS = ("train", "val", "test")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
MANIFEST_VERSION = 1
DATA_SOURCE = "veripo-synth"

#: Nominal square colours (RGB). Far apart in hue so they survive yuv420p chroma subsampling.
COLOUR_RGB = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 80, 230), "yellow": (225, 210, 40)}
#: difficulty -> (noise scale, max drift px/frame, square side scale)
DIFFICULTY = {"easy": (1.0, 1, 1.0), "medium": (1.5, 2, 0.75), "hard": (2.5, 4, 0.5)}
BACKGROUND_LEVELS = (25, 65)  # the background grey level is drawn from this range, inclusive

_VIDEO_NAME_RE = re.compile(r"^(train|val|test)-\d{5}\.mp4$")


def _weights(mix: Any, types: tuple[str, ...]) -> tuple[float, ...]:
    """``SynthSpec.mix`` as one weight per entry of ``types`` (a YAML string from the command line is parsed)."""
    if isinstance(mix, str):  # from the command line: "1,2,1", "[1, 2, 1]" or "{direction: 2}"
        import yaml

        parsed = yaml.safe_load(mix) if mix.strip() else ()
        mix = [w for w in mix.split(",") if w.strip()] if isinstance(parsed, str) else parsed
    if isinstance(mix, (int, float)):
        mix = [mix]
    if isinstance(mix, dict):
        unknown = sorted(set(mix) - set(TASKS))
        if unknown:
            raise ConfigError(f"mix: {unknown} not valid task types; choose from {list(TASKS)}")
        return tuple(float(mix.get(t, 1.0)) for t in types) if mix else ()
    return tuple(float(w) for w in (mix or ()))


@dataclasses.dataclass
class SynthSpec:
    """What to generate. Every field is part of the manifest: change one and the task is rebuilt."""

    seed: int = doc("Random seed: the same spec and seed give the same rows and the same video files.", 0)
    n_train: int = doc("Number of train rows (one video each).", 256)
    n_val: int = doc("Number of validation rows.", 32)
    n_test: int = doc("Number of held-out test rows.", 64)
    types: tuple[str, ...] = doc(f"Task types to mix, from {list(TASKS)}.", ("color",))
    mix: tuple[float, ...] | dict[str, float] = doc(
        "Relative weight of each task type: a list, one weight per entry of 'types' in order, or a mapping "
        "type -> weight (types it does not name weigh 1, names not in 'types' are ignored: it survives a change of "
        "'types'); empty: equal shares.", ())
    difficulty: str = doc(f"One of {list(DIFFICULTY)}: scales noise, drift and square size.", "easy")
    frames: int = doc("Frames per clip (even; flashes are aligned to frame pairs = temporal patch 2).", 8)
    size: int = doc("Frame width and height in pixels (even, for H.264).", 56)
    fps: float = doc("Frame rate written into the mp4.", 4.0)
    square: int = doc("Square side in pixels at 'easy' (colour/direction/order/count tasks).", 24)
    noise: int = doc("Uniform pixel noise amplitude (+-) at 'easy'.", 10)
    crf: int = doc("libx264 constant rate factor (0 = lossless, which is also the only setting whose bytes "
                   "are the same on every run: x264 at crf > 0 varied between processes).", 0)
    shuffle_options: bool = doc("Shuffle the option order per row (default: fixed order, as in the probe).", False)
    flawed_inconsistent: float = doc("Fraction of train rows whose response's reasoning and answer disagree.", 0.15)
    flawed_repetitive: float = doc("Fraction of train rows whose response loops one sentence.", 0.10)
    flawed_wrong: float = doc("Fraction of train rows whose response is consistent but wrong.", 0.0)
    flawed_reflective: float = doc("Fraction of train rows whose response reasons to a wrong value, then corrects "
                                   "itself ('Wait, ...') and answers the truth.", 0.0)
    flawed_types: tuple[str, ...] = doc("Task types whose train rows may get the flawed_* responses (the fractions are "
                                        "of those rows); empty = every type. A type at the edge of learnability "
                                        "learns far slower with flawed rows (docs/demo-results.md).", ())

    def __post_init__(self) -> None:
        self.types = tuple(self.types)
        self.mix = _weights(self.mix, self.types)
        self.flawed_types = tuple(self.flawed_types)
        bad = [t for t in self.types if t not in TASKS]
        if not self.types or bad:
            raise ConfigError(f"types: {bad or 'empty'} not valid; choose from {list(TASKS)}")
        if not set(self.flawed_types) <= set(TASKS):  # a type not in this task's mix is simply never drawn
            raise ConfigError(f"flawed_types: {sorted(set(self.flawed_types) - set(TASKS))} not valid; choose from "
                              f"{list(TASKS)}")
        if len(set(self.types)) != len(self.types):
            raise ConfigError(f"types: duplicate entries in {list(self.types)}")
        if self.mix and (len(self.mix) != len(self.types) or min(self.mix) < 0 or sum(self.mix) <= 0):
            raise ConfigError(f"mix: needs {len(self.types)} non-negative weights (one per type), got {list(self.mix)}")
        if self.difficulty not in DIFFICULTY:
            raise ConfigError(f"difficulty: {self.difficulty!r} is not one of {list(DIFFICULTY)}")
        if min(self.n_train, self.n_val, self.n_test) < 0:
            raise ConfigError("n_train, n_val and n_test must be >= 0")
        if self.frames < 4 or self.frames % 2:
            raise ConfigError(f"frames: must be even and >= 4 (two frame pairs), got {self.frames}")
        if self.size < 16 or self.size % 2:
            raise ConfigError(f"size: must be even and >= 16, got {self.size}")
        if not 2 <= self.square <= self.size // 2:
            raise ConfigError(f"square: must be between 2 and size/2 = {self.size // 2}, got {self.square}")
        if self.fps <= 0 or self.noise < 0 or not 0 <= self.crf <= 51:
            raise ConfigError("fps must be > 0, noise >= 0 and crf in 0..51")
        fractions = (self.flawed_inconsistent, self.flawed_repetitive, self.flawed_wrong, self.flawed_reflective)
        if min(fractions) < 0 or sum(fractions) > 1:
            raise ConfigError(f"flawed_*: fractions must be >= 0 and sum to <= 1, got {fractions}")

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


@dataclasses.dataclass
class TaskFiles:
    """Where :func:`generate_task` put things, and what it counted."""

    root: Path
    splits: dict[str, Path]  # split -> JSONL path
    manifest: Path
    counts: dict[str, dict[str, Any]]  # split -> {"rows", "tasks": {task: n}, "response_kinds": {kind: n}}
    content_hash: str
    reused: bool  # True when a matching manifest was found and nothing was written

    @property
    def train(self) -> Path:
        return self.splits["train"]

    @property
    def val(self) -> Path:
        return self.splits["val"]

    @property
    def test(self) -> Path:
        return self.splits["test"]


# ----------------------------------------------------------------------------------------------- world


def _side(spec: SynthSpec) -> int:
    """The square side of the colour/direction/order/count clips: even (see _even), at most size/2."""
    side = max(2, 2 * round(spec.square * DIFFICULTY[spec.difficulty][2] / 2))
    return min(side, spec.size // 4 * 2)


def answer_domain(task: str, spec: SynthSpec) -> list[Any]:
    """The values a task's answer can take (options, counts, or pixel ranges)."""
    if task in T.OPTION_VALUES:
        return list(T.OPTION_VALUES[task])
    if task == "count":
        return list(range(1, spec.frames // 2 + 1))
    if task == "size":  # even sides (see _even)
        return list(range(max(2, spec.size // 8 + spec.size // 8 % 2), spec.size // 2 + 1, 2))
    if task == "distance":
        return list(range(4, spec.size - _side(spec) + 1, 2))
    raise ValueError(f"unknown synthetic task {task!r}")


def _even(rng: np.random.Generator, lo: int, hi: int) -> int:
    """A random even integer in [lo, hi] (squares start on the 2x2 chroma grid of yuv420p, so their
    edges stay sharp in the encoded video and sizes/distances can be read back to the pixel)."""
    lo += lo % 2
    return lo + 2 * int(rng.integers(0, (hi - lo) // 2 + 1))


def _drift_track(rng: np.random.Generator, spec: SynthSpec, side: int) -> dict[str, int]:
    """An even start position and a constant drift that keeps the square inside the frame."""
    d = DIFFICULTY[spec.difficulty][1]
    span, steps = spec.size - side, spec.frames - 1
    out: dict[str, int] = {}
    for pos, vel in (("x", "vx"), ("y", "vy")):
        v = int(rng.integers(-d, d + 1))
        lo, hi = max(0, -v * steps), min(span, span - v * steps)
        if lo + lo % 2 > hi:
            v, lo, hi = 0, 0, span
        out[pos], out[vel] = _even(rng, lo, hi), v
    return out


def make_meta(task: str, value: Any, spec: SynthSpec, rng: np.random.Generator) -> dict[str, Any]:
    """The ground-truth facts of one clip whose answer is ``value``."""
    W, side = spec.size, _side(spec)
    colour = str(rng.choice(T.COLOURS))
    if task == "color":
        return {"colour": value, "side": side, **_drift_track(rng, spec, side)}
    if task == "size":
        return {"colour": colour, "side": int(value), **_drift_track(rng, spec, int(value))}
    if task == "direction":
        a, b = _even(rng, 0, 3), W - side - _even(rng, 0, 3)  # start / end along the axis
        across = _even(rng, 0, W - side)
        start, end = {"right": ((a, across), (b, across)), "left": ((b, across), (a, across)),
                      "down": ((across, a), (across, b)), "up": ((across, b), (across, a))}[value]
        return {"direction": value, "colour": colour, "side": side,
                "x0": start[0], "y0": start[1], "x1": end[0], "y1": end[1]}
    if task == "order":
        second = str(rng.choice([c for c in T.COLOURS if c != value]))
        pairs = sorted(int(p) for p in rng.choice(spec.frames // 2, size=2, replace=False))
        halves = [(0, W // 2 - side), (W // 2, W - side)]  # left and right half: the squares never overlap
        if rng.random() < 0.5:
            halves.reverse()
        xy = [[_even(rng, lo, hi), _even(rng, 0, W - side)] for lo, hi in halves]
        return {"first": value, "second": second, "side": side, "first_xy": xy[0], "second_xy": xy[1],
                "first_frames": [2 * pairs[0], 2 * pairs[0] + 1], "second_frames": [2 * pairs[1], 2 * pairs[1] + 1]}
    if task == "count":
        slots = rng.choice(spec.frames // 2, size=int(value), replace=False)
        return {"count": int(value), "colour": colour, "side": side, "n_frames": spec.frames,
                "flash_frames": sorted(2 * int(p) for p in slots),
                "x": _even(rng, 0, W - side), "y": _even(rng, 0, W - side)}
    if task == "distance":
        d = int(value)
        x0 = _even(rng, 0, W - side - d)
        x0, x1 = (x0, x0 + d) if rng.random() < 0.5 else (x0 + d, x0)
        return {"distance": d, "colour": colour, "side": side, "x0": x0, "x1": x1, "y": _even(rng, 0, W - side)}
    raise ValueError(f"unknown synthetic task {task!r}")


def squares_at(task: str, meta: dict[str, Any], t: int, n_frames: int) -> list[tuple[int, int, int, str]]:
    """The squares visible in frame ``t``: ``(x, y, side, colour)`` with (x, y) the top-left corner."""
    m, s = meta, meta["side"]
    lerp = lambda a, b: int(round(a + (b - a) * t / max(1, n_frames - 1)))  # noqa: E731
    if task in ("color", "size"):
        return [(m["x"] + m["vx"] * t, m["y"] + m["vy"] * t, s, m["colour"])]
    if task == "direction":
        return [(lerp(m["x0"], m["x1"]), lerp(m["y0"], m["y1"]), s, m["colour"])]
    if task == "order":
        return [(*m[k + "_xy"], s, m[k]) for k in ("first", "second") if t in m[k + "_frames"]]
    if task == "count":
        return [(m["x"], m["y"], s, m["colour"])] if t in m["flash_frames"] else []
    if task == "distance":
        return [(lerp(m["x0"], m["x1"]), m["y"], s, m["colour"])]
    raise ValueError(f"unknown synthetic task {task!r}")


def render_frames(task: str, meta: dict[str, Any], spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """uint8 frames ``[frames, size, size, 3]``: grey background, squares, then uniform noise on every pixel."""
    T_, W = spec.frames, spec.size
    level = int(rng.integers(BACKGROUND_LEVELS[0], BACKGROUND_LEVELS[1] + 1))
    canvas = np.full((T_, W, W, 3), level, dtype=np.int16)
    for t in range(T_):
        for x, y, s, colour in squares_at(task, meta, t, T_):
            canvas[t, y:y + s, x:x + s] = COLOUR_RGB[colour]
    amp = int(round(spec.noise * DIFFICULTY[spec.difficulty][0]))
    if amp:
        canvas += rng.integers(-amp, amp + 1, size=canvas.shape, dtype=np.int16)
    return np.clip(canvas, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ rows


def _allocate(n: int, weights: list[float]) -> list[int]:
    """Split ``n`` into integer shares proportional to ``weights`` (largest remainder)."""
    total = sum(weights)
    exact = [n * w / total for w in weights]
    counts = [int(e) for e in exact]
    for i in sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _response_kinds(spec: SynthSpec, split: str, tasks: list[str], rng: np.random.Generator) -> list[str]:
    """Each row's response kind: the flawed_* fractions of the train rows whose task may be flawed, the rest
    correct."""
    kinds = ["correct"] * len(tasks)
    if split != "train":
        return kinds
    eligible = [i for i, t in enumerate(tasks) if not spec.flawed_types or t in spec.flawed_types]
    n = len(eligible)
    order = [eligible[int(i)] for i in rng.permutation(n)]
    start = 0
    for kind, frac in (("inconsistent", spec.flawed_inconsistent), ("repetitive", spec.flawed_repetitive),
                       ("wrong", spec.flawed_wrong), ("reflective", spec.flawed_reflective)):
        k = min(int(round(frac * n)), n - start)
        for i in order[start:start + k]:
            kinds[i] = kind
        start += k
    return kinds


def _row_rng(spec: SynthSpec, split: str, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, _SPLIT_CODE[split], index, purpose])


def video_relpath(split: str, index: int) -> str:
    return f"videos/{split}-{index:05d}.mp4"


def build_rows(spec: SynthSpec, split: str) -> list[dict[str, Any]]:
    """The rows of one split (no I/O): schema fields plus ``task``, ``split``, ``difficulty``,
    ``response_kind`` and ``meta``. Paths are relative to the output folder."""
    n = spec.split_sizes()[split]
    split_rng = np.random.default_rng([spec.seed, _SPLIT_CODE[split]])
    weights = list(spec.mix) or [1.0] * len(spec.types)
    tasks = [t for t, c in zip(spec.types, _allocate(n, weights)) for _ in range(c)]
    tasks = [tasks[int(i)] for i in split_rng.permutation(n)]
    kinds = _response_kinds(spec, split, tasks, split_rng)
    seen = {t: 0 for t in spec.types}
    rows = []
    for i, (task, kind) in enumerate(zip(tasks, kinds)):
        rng = _row_rng(spec, split, i, 0)
        domain = answer_domain(task, spec)
        if T.PROBLEM_TYPES[task] == "regression":
            value = domain[int(rng.integers(len(domain)))]
        else:  # balanced classes: cycle through the answers
            value = domain[seen[task] % len(domain)]
        seen[task] += 1
        meta = make_meta(task, value, spec, rng)
        values = list(T.OPTION_VALUES.get(task, ()))
        if values and spec.shuffle_options:
            values = [values[int(j)] for j in rng.permutation(len(values))]
        options = T.option_strings(values)
        sample = Sample(
            problem_id=f"synth-{split}-{i:05d}", problem=T.problem_text(task, spec.size),
            problem_type=T.PROBLEM_TYPES[task], solution=f"<answer>{T.answer_text(task, meta, options)}</answer>",
            data_type="video", options=options, path=video_relpath(split, i), data_source=DATA_SOURCE,
            extra={"task": task, "split": split, "difficulty": spec.difficulty, "response_kind": kind, "meta": meta},
        )
        sample.response = T.make_response(sample, kind, random.Random(f"{spec.seed}:{split}:{i}"))
        rows.append(sample.to_dict())
    return rows


def task_corpus(spec: SynthSpec) -> list[str]:
    """All the text the task can produce (prompts with their instruction, options, every answer value's
    correct and flawed responses), deduplicated: the training text of the tiny tokenizer."""
    from veripo.prompts import question_text

    texts: dict[str, None] = {}
    rng = np.random.default_rng([spec.seed, 99])
    trng = random.Random(f"{spec.seed}:corpus")
    for task in spec.types:
        options = T.option_strings(T.OPTION_VALUES.get(task, ()))
        for value in answer_domain(task, spec):
            meta = make_meta(task, value, spec, rng)
            row = Sample(problem_id="corpus", problem=T.problem_text(task, spec.size),
                         problem_type=T.PROBLEM_TYPES[task], solution="", options=options,
                         extra={"task": task, "meta": meta})
            texts[question_text(row, reasoning=True)] = None
            texts[question_text(row, reasoning=False)] = None
            for kind in T.RESPONSE_KINDS:
                texts[T.make_response(row, kind, trng)] = None
    return list(texts)


def write_corpus(path: str | Path, spec: SynthSpec) -> int:
    """Write :func:`task_corpus` one line per text line (the format of ``veripo model build-tiny --corpus``);
    returns the number of lines."""
    lines = [line for text in task_corpus(spec) for line in text.splitlines() if line.strip()]
    lines = list(dict.fromkeys(lines))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


# ---------------------------------------------------------------------------------------------- on disk


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def content_hash(root: str | Path, relpaths: list[str]) -> str:
    """sha256 over (relative path, sha256 of the file) of every listed file, sorted by path."""
    root = Path(root)
    h = hashlib.sha256()
    for rel in sorted(relpaths):
        h.update(f"{rel}\0{_sha256(root / rel)}\n".encode())
    return h.hexdigest()


def _spec_json(spec: SynthSpec) -> dict[str, Any]:
    return json.loads(json.dumps(to_dict(spec)))


def _reusable(root: Path, spec: SynthSpec) -> dict[str, Any] | None:
    """The manifest when it matches ``spec`` and every file still hashes to its content hash."""
    path = root / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("version") != MANIFEST_VERSION or manifest.get("spec") != _spec_json(spec):
            return None
        if content_hash(root, manifest["files"]) != manifest["content_hash"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest


def _files(root: Path, manifest: dict[str, Any], reused: bool) -> TaskFiles:
    return TaskFiles(root=root, splits={s: root / f"{s}.jsonl" for s in SPLITS}, manifest=root / "manifest.json",
                     counts=manifest["counts"], content_hash=manifest["content_hash"], reused=reused)


def _count(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tasks: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for r in rows:
        tasks[r["task"]] = tasks.get(r["task"], 0) + 1
        kinds[r["response_kind"]] = kinds.get(r["response_kind"], 0) + 1
    return {"rows": len(rows), "tasks": tasks, "response_kinds": kinds}


def generate_task(out_dir: str | Path, spec: SynthSpec | None = None, progress: bool = True,
                  force: bool = False) -> TaskFiles:
    """Write ``videos/*.mp4``, ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` and ``manifest.json``
    (spec, counts per split/task/response kind, content hash) under ``out_dir``.

    Skips all work when the manifest matches ``spec`` and the files are intact (unless ``force``).
    The manifest is written last, so an interrupted run is simply redone. Shows a tqdm bar
    (``TQDM_DISABLE=1`` or ``progress=False`` hides it).
    """
    from tqdm import tqdm

    from veripo.video.write import write_mp4

    spec = spec or SynthSpec()
    root = Path(out_dir)
    if not force and (manifest := _reusable(root, spec)) is not None:
        return _files(root, manifest, reused=True)
    (root / "manifest.json").unlink(missing_ok=True)
    (root / "videos").mkdir(parents=True, exist_ok=True)

    rows = {split: build_rows(spec, split) for split in SPLITS}
    wanted = {Path(r["path"]).name for split_rows in rows.values() for r in split_rows}
    for stale in (root / "videos").glob("*.mp4"):  # left over from a bigger earlier spec
        if _VIDEO_NAME_RE.match(stale.name) and stale.name not in wanted:
            stale.unlink()
    total = sum(len(r) for r in rows.values())
    bar_kwargs = {} if progress else {"disable": True}  # unset, tqdm honours TQDM_DISABLE
    with tqdm(total=total, desc="synthetic videos", unit="video", **bar_kwargs) as bar:
        for split, split_rows in rows.items():
            for i, row in enumerate(split_rows):
                frames = render_frames(row["task"], row["meta"], spec, _row_rng(spec, split, i, 1))
                write_mp4(root / row["path"], frames, fps=spec.fps, crf=spec.crf)
                bar.update(1)
    for split, split_rows in rows.items():
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in split_rows]
        atomic_write_text(root / f"{split}.jsonl", "".join(lines))

    relpaths = [f"{s}.jsonl" for s in SPLITS] + [r["path"] for split_rows in rows.values() for r in split_rows]
    manifest = {
        "version": MANIFEST_VERSION,
        "spec": _spec_json(spec),
        "counts": {split: _count(split_rows) for split, split_rows in rows.items()},
        "files": relpaths,
        "content_hash": content_hash(root, relpaths),
    }
    atomic_write_json(root / "manifest.json", manifest)
    return _files(root, manifest, reused=False)
