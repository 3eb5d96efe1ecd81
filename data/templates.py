"""Question and reasoning templates of the synthetic video task, and deliberately flawed responses.

Every synthetic row carries ``task`` (``color``, ``direction``, ``order``, ``count``, ``size``,
``distance``) and ``meta`` (the ground-truth facts the video was drawn from). From those, this module
writes the question, a concise correct response, and four kinds of deliberately flawed response for the
warm start, so the Rollout-Aware Verifier has real work to do. The reasoning says what the frames show, in
order, then concludes: "First the square is at the left, then it is at the right, so the direction is right."

================  =================================================================================
``correct``       ``<think>{what the frames show} so {truth}</think><answer>{true answer}</answer>``
``inconsistent``  the reasoning concludes one value and the answer says another (either side true)
``repetitive``    the reasoning's observation loops 3-4 times without a conclusion, then the (true) answer
``wrong``         reasoning and answer agree, but about a wrong value
``reflective``    a wrong reasoning, "Wait, " and the correct one, then the true answer (self-correction)
================  =================================================================================

A *wrong value* is drawn by :func:`wrong_meta`: another option for multiple choice (the two colours
swapped for ``order``), another count, or a size/distance off by at least 2 pixels.
"""
from __future__ import annotations

import random
import re
from typing import Any, Callable

from veripo.data.schema import Sample

COLOURS = ("red", "green", "blue", "yellow")
DIRECTIONS = ("left", "right", "up", "down")

#: task -> problem_type of the rows it produces.
PROBLEM_TYPES = {
    "color": "multiple choice",
    "direction": "multiple choice",
    "order": "multiple choice",
    "count": "numerical",
    "size": "regression",
    "distance": "regression",
}
#: task -> the option names of a multiple-choice task (in the default, fixed order).
OPTION_VALUES = {"color": COLOURS, "direction": DIRECTIONS, "order": COLOURS}
#: task -> the meta key that holds the answer.
ANSWER_KEY = {"color": "colour", "direction": "direction", "order": "first", "count": "count",
              "size": "side", "distance": "distance"}

QUESTIONS = {
    "color": "What colour is the square?",
    "direction": "In which direction does the square move?",
    "order": "Two squares flash one after the other. Which colour appears first?",
    "count": "How many times does the square flash?",
    "size": "The video is {width} pixels wide. How many pixels wide is the square?",
    "distance": "The video is {width} pixels wide. How many pixels does the square move from the first "
                "frame to the last?",
}

RESPONSE_KINDS = ("correct", "inconsistent", "repetitive", "wrong", "reflective")
_OPTION_RE = re.compile(r"^\s*([A-Z])\s*[.)]\s*(.*)$", re.S)


def problem_text(task: str, width: int) -> str:
    """The question (without options) of a ``task`` row; ``width`` is the frame width in pixels."""
    return QUESTIONS[task].format(width=width)


def option_strings(values: list[str] | tuple[str, ...]) -> list[str]:
    """Video-R1 style options: ``["A. red", "B. green", ...]``."""
    return [f"{chr(ord('A') + i)}. {v}" for i, v in enumerate(values)]


def option_values(options: list[str]) -> list[tuple[str, str]]:
    """``["A. red", ...]`` -> ``[("A", "red"), ...]``."""
    out = []
    for opt in options:
        m = _OPTION_RE.match(opt)
        out.append((m.group(1), m.group(2).strip()) if m else ("", opt.strip()))
    return out


def _frames_text(frames: list[int]) -> str:
    """0-based frame indices as 1-based words: ``[0, 2, 6]`` -> ``"frames 1, 3 and 7"``."""
    names = [str(f + 1) for f in frames]
    if len(names) == 1:
        return f"frame {names[0]}"
    return "frames " + ", ".join(names[:-1]) + " and " + names[-1]


#: direction -> (where the square is first, where it is last)
_ENDS = {"right": ("left", "right"), "left": ("right", "left"), "down": ("top", "bottom"), "up": ("bottom", "top")}


def reasoning_parts(task: str, meta: dict[str, Any]) -> tuple[str, str]:
    """(what the frames show, in order; the conclusion), without final punctuation. The conclusion always
    reads "so the X is V", the form the verifier's rule judge parses (veripo.verifier.judges.stated_conclusion)."""
    m = meta
    if task == "color":
        return f"First the square is {m['colour']}, then it is still {m['colour']}", f"so the colour is {m['colour']}"
    if task == "direction":
        start, end = _ENDS[m["direction"]]
        return (f"First the square is at the {start}, then it is at the {end}",
                f"so the direction is {m['direction']}")
    if task == "order":
        return (f"First the {m['first']} square flashes, then the {m['second']} square flashes",
                f"so the first colour is {m['first']}")
    if task == "count":
        return f"The square is visible in {_frames_text(m['flash_frames'])}", f"so the count is {m['count']}"
    if task == "size":
        return f"The square spans {m['side']} pixels in each frame", f"so its side is {m['side']} pixels"
    if task == "distance":
        return (f"First the square is at x={m['x0']}, then it is at x={m['x1']}",
                f"so the distance is {m['distance']} pixels")
    raise ValueError(f"unknown synthetic task {task!r}; choose from {sorted(PROBLEM_TYPES)}")


def reasoning_text(task: str, meta: dict[str, Any]) -> str:
    """One sentence, e.g. ``First the square is at the left, then it is at the right, so the direction is right.``"""
    premise, conclusion = reasoning_parts(task, meta)
    return f"{premise}, {conclusion}."


def answer_text(task: str, meta: dict[str, Any], options: list[str]) -> str:
    """The answer a response gives for ``meta``: the option letter, or the number."""
    value = meta[ANSWER_KEY[task]]
    if PROBLEM_TYPES[task] != "multiple choice":
        return str(value)
    for letter, text in option_values(options):
        if text == value:
            return letter
    raise ValueError(f"{value!r} is not among the options {options}")


def format_response(reasoning: str, answer: str) -> str:
    return f"<think>{reasoning}</think><answer>{answer}</answer>"


def wrong_meta(task: str, meta: dict[str, Any], options: list[str], rng: random.Random) -> dict[str, Any]:
    """A copy of ``meta`` describing a plausible but wrong world (its answer differs from the truth)."""
    m = dict(meta)
    if task == "order":
        m["first"], m["second"] = meta["second"], meta["first"]
    elif task in ("color", "direction"):
        key = ANSWER_KEY[task]
        m[key] = rng.choice([v for _, v in option_values(options) if v != meta[key]])
    elif task == "count":
        slots = list(range(0, meta["n_frames"], 2))
        m["count"] = rng.choice([n for n in range(1, len(slots) + 1) if n != meta["count"]])
        m["flash_frames"] = sorted(rng.sample(slots, m["count"]))
    elif task == "size":
        step = max(2, round(meta["side"] * 0.4))
        m["side"] = meta["side"] + step if meta["side"] - step < 1 or rng.random() < 0.5 else meta["side"] - step
    elif task == "distance":
        step = max(2, round(meta["distance"] * 0.4))
        d = meta["distance"] + step if meta["distance"] - step < 1 or rng.random() < 0.5 else meta["distance"] - step
        sign = 1 if meta["x1"] >= meta["x0"] else -1
        m["distance"], m["x1"] = d, meta["x0"] + sign * d
    else:
        raise ValueError(f"unknown synthetic task {task!r}")
    return m


def _fields(sample: Sample) -> tuple[str, dict[str, Any], list[str]]:
    """(task, meta, options) of a synthetic sample."""
    task, meta = sample.extra.get("task"), sample.extra.get("meta")
    if task not in PROBLEM_TYPES or not isinstance(meta, dict):
        raise ValueError("not a synthetic row: it needs 'task' and 'meta' fields")
    return task, meta, list(sample.options)


def correct_response(sample: Sample, rng: random.Random | None = None) -> str:
    """The templated correct reasoning and answer, e.g.
    ``<think>The square is blue in every frame, so the colour is blue.</think><answer>C</answer>``."""
    task, meta, options = _fields(sample)
    return format_response(reasoning_text(task, meta), answer_text(task, meta, options))


def inconsistent_response(sample: Sample, rng: random.Random) -> str:
    """The reasoning concludes one value, the answer says another (which side is true is random)."""
    task, meta, options = _fields(sample)
    other = wrong_meta(task, meta, options, rng)
    said, answered = (meta, other) if rng.random() < 0.5 else (other, meta)
    return format_response(reasoning_text(task, said), answer_text(task, answered, options))


def repetitive_response(sample: Sample, rng: random.Random) -> str:
    """The reasoning's premise loops 3-4 times (no conclusion), then the true answer."""
    task, meta, options = _fields(sample)
    sentence = reasoning_parts(task, meta)[0] + "."
    return format_response(" ".join([sentence] * rng.randint(3, 4)), answer_text(task, meta, options))


def reflective_response(sample: Sample, rng: random.Random) -> str:
    """A wrong reasoning, then a correction: ``<wrong reasoning> Wait, <correct reasoning>``, and the true answer
    (consistent: the last conclusion is the answer). VerIPO's reflective responses, in the warm start."""
    task, meta, options = _fields(sample)
    other = wrong_meta(task, meta, options, rng)
    right = reasoning_text(task, meta)
    return format_response(f"{reasoning_text(task, other)} Wait, {right[0].lower()}{right[1:]}",
                           answer_text(task, meta, options))


def wrong_response(sample: Sample, rng: random.Random) -> str:
    """A consistent response about a wrong value (reasoning and answer agree; both are wrong)."""
    task, meta, options = _fields(sample)
    other = wrong_meta(task, meta, options, rng)
    return format_response(reasoning_text(task, other), answer_text(task, other, options))


RESPONSE_BUILDERS: dict[str, Callable[[Sample, random.Random], str]] = {
    "correct": correct_response,
    "inconsistent": inconsistent_response,
    "repetitive": repetitive_response,
    "wrong": wrong_response,
    "reflective": reflective_response,
}


def make_response(sample: Sample, kind: str, rng: random.Random) -> str:
    """A response of ``kind`` (one of :data:`RESPONSE_KINDS`) for a synthetic row."""
    if kind not in RESPONSE_BUILDERS:
        raise ValueError(f"unknown response kind {kind!r}; choose from {list(RESPONSE_KINDS)}")
    return RESPONSE_BUILDERS[kind](sample, rng)
