"""The synthetic task: deterministic, idempotent, and every answer is true of the decoded pixels."""
import json
import os
import time

import av
import numpy as np
import pytest

from veripo.config import ConfigError
from veripo.data.schema import load_samples
from veripo.data.synthetic import (COLOUR_RGB, TASKS, SynthSpec, build_rows, generate_task, render_frames,
                                   task_corpus)
from veripo.data.templates import option_values
from veripo.prompts import question_text

ALL_TYPES = SynthSpec(types=TASKS, n_train=12, n_val=0, n_test=6, seed=3)
PALETTE = np.array(list(COLOUR_RGB.values()), dtype=float)
NAMES = list(COLOUR_RGB)


def decode(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def square_mask(frame):
    """Pixels that belong to a coloured square: strongly saturated (the background is noisy grey)."""
    f = frame.astype(int)
    return (f.max(-1) - f.min(-1)) > 80


def colour_of(pixels):
    return NAMES[int(np.argmin(((PALETTE - pixels.astype(float).mean(0)) ** 2).sum(1)))]


def answer_value(sample):
    """The answer's meaning: the option text for multiple choice, else the number."""
    if sample.problem_type == "multiple choice":
        return dict(option_values(sample.options))[sample.answer]
    return int(sample.answer)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate_task(out, ALL_TYPES, progress=False)
    return out


@pytest.fixture(scope="module")
def samples(task_dir):
    return load_samples(task_dir / "train.jsonl", strict=True) + load_samples(task_dir / "test.jsonl", strict=True)


def test_every_task_type_is_present_and_videos_decode(samples):
    assert {s.extra["task"] for s in samples} == set(TASKS)
    for s in samples:
        frames = decode(s.path)
        assert frames.shape == (ALL_TYPES.frames, ALL_TYPES.size, ALL_TYPES.size, 3), s.path


def test_colour_answers_are_the_colour_in_the_pixels(samples, tmp_path):
    hard = SynthSpec(types=("color",), n_train=8, n_val=0, n_test=0, difficulty="hard", shuffle_options=True,
                     seed=5)
    generate_task(tmp_path, hard, progress=False)
    hard_rows = load_samples(tmp_path / "train.jsonl", strict=True)
    assert len({tuple(s.options) for s in hard_rows}) > 1  # options really shuffled
    checked = 0
    for s in [s for s in samples if s.extra["task"] == "color"] + hard_rows:
        for frame in decode(s.path):
            mask = square_mask(frame)
            assert mask.sum() >= 20, s.path
            assert colour_of(frame[mask]) == answer_value(s), s.path
        checked += 1
    assert checked >= 10


def test_direction_answers_match_the_motion(samples):
    rows = [s for s in samples if s.extra["task"] == "direction"]
    assert rows
    for s in rows:
        frames = decode(s.path)
        (y0, x0), (y1, x1) = (np.argwhere(square_mask(frames[i])).mean(0) for i in (0, -1))
        dx, dy = x1 - x0, y1 - y0
        seen = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
        assert max(abs(dx), abs(dy)) > 20
        assert seen == answer_value(s), s.path


def nearest_colours(pixels):
    return np.argmin(((pixels[:, None, :].astype(float) - PALETTE[None]) ** 2).sum(-1), axis=1)


def test_order_answers_name_the_colour_that_flashes_first(samples):
    rows = [s for s in samples if s.extra["task"] == "order"]
    assert rows
    for s in rows:
        first_seen = {}
        area = s.extra["meta"]["side"] ** 2
        for t, frame in enumerate(decode(s.path)):
            counts = np.bincount(nearest_colours(frame[square_mask(frame)]), minlength=len(NAMES))
            for k in np.where(counts >= area / 2)[0]:  # a whole square of that colour, not a blurred edge
                first_seen.setdefault(NAMES[k], t)
        assert len(first_seen) == 2, (s.path, first_seen)
        assert min(first_seen, key=first_seen.get) == answer_value(s), s.path
        assert len(set(first_seen.values())) == 2  # they flash at different times


def test_count_answers_match_the_flashes(samples):
    rows = [s for s in samples if s.extra["task"] == "count"]
    assert rows and all(s.problem_type == "numerical" for s in rows)
    for s in rows:
        visible = [t for t, frame in enumerate(decode(s.path)) if square_mask(frame).sum() >= 20]
        assert len(visible) == answer_value(s), s.path
        assert all(b - a >= 2 for a, b in zip(visible, visible[1:]))  # separate flashes, never merged


def test_size_and_distance_answers_match_the_pixels(samples):
    rows = [s for s in samples if s.extra["task"] in ("size", "distance")]
    assert {s.problem_type for s in rows} == {"regression"}
    for s in rows:
        frames = decode(s.path)
        if s.extra["task"] == "size":
            cols = np.where(square_mask(frames[0]).any(0))[0]
            assert len(cols) == answer_value(s), s.path  # exact: squares sit on the chroma grid
        else:
            x0, x1 = (np.argwhere(square_mask(frames[i]))[:, 1].mean() for i in (0, -1))
            assert abs(abs(x1 - x0) - answer_value(s)) < 0.5, s.path


def test_same_seed_same_rows_and_frames_other_seed_other_rows(task_dir, tmp_path):
    again = generate_task(tmp_path / "again", ALL_TYPES, progress=False)
    for split in ("train", "val", "test"):
        assert (task_dir / f"{split}.jsonl").read_bytes() == again.splits[split].read_bytes()
    rows = build_rows(ALL_TYPES, "train")
    for i, row in enumerate(rows[:4]):  # the drawn frames are a pure function of (spec, split, row)
        a = render_frames(row["task"], row["meta"], ALL_TYPES, np.random.default_rng([3, 0, i, 1]))
        b = render_frames(row["task"], row["meta"], ALL_TYPES, np.random.default_rng([3, 0, i, 1]))
        assert np.array_equal(a, b)
    videos = sorted(p.name for p in (task_dir / "videos").glob("*.mp4"))
    assert len(videos) == 18
    for name in videos:  # x264's frame threads may round a few pixels differently (less than the noise)
        a, b = decode(task_dir / "videos" / name).astype(int), decode(tmp_path / "again" / "videos" / name).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 20 and np.abs(a - b).mean() < 0.25, name
    other = generate_task(tmp_path / "other", SynthSpec(**{**ALL_TYPES.__dict__, "seed": 4}), progress=False)
    assert other.train.read_text() != again.train.read_text()
    assert other.content_hash != again.content_hash


def test_same_seed_gives_identical_video_bytes(task_dir, tmp_path):
    again = generate_task(tmp_path, ALL_TYPES, progress=False)
    assert again.content_hash == json.loads((task_dir / "manifest.json").read_text())["content_hash"]


def test_rerun_is_a_no_op_and_damage_or_spec_change_rebuilds(tmp_path):
    spec = SynthSpec(n_train=6, n_val=2, n_test=2)
    first = generate_task(tmp_path, spec, progress=False)
    assert not first.reused
    stamp = os.stat(first.train).st_mtime_ns
    second = generate_task(tmp_path, spec, progress=False)
    assert second.reused and os.stat(first.train).st_mtime_ns == stamp
    assert second.content_hash == first.content_hash

    (tmp_path / "videos" / "train-00003.mp4").write_bytes(b"not a video")  # damaged file: rebuilt
    third = generate_task(tmp_path, spec, progress=False)
    assert not third.reused and third.train.read_text() == first.train.read_text()
    assert decode(tmp_path / "videos" / "train-00003.mp4").shape[0] == spec.frames

    smaller = generate_task(tmp_path, SynthSpec(n_train=3, n_val=2, n_test=2), progress=False)
    assert not smaller.reused
    assert not (tmp_path / "videos" / "train-00005.mp4").exists()  # stale videos removed
    manifest = json.loads(smaller.manifest.read_text())
    assert manifest["spec"]["n_train"] == 3 and manifest["counts"]["train"]["rows"] == 3


def test_default_spec_counts_balance_flaws_and_speed(tmp_path):
    start = time.time()
    files = generate_task(tmp_path, SynthSpec(), progress=False)
    elapsed = time.time() - start
    assert elapsed < 30, f"352 videos took {elapsed:.1f} s"
    train = [json.loads(line) for line in files.train.read_text().splitlines()]
    test = [json.loads(line) for line in files.test.read_text().splitlines()]
    assert (len(train), len(test), files.counts["val"]["rows"]) == (256, 64, 32)
    assert sorted({r["solution"] for r in test}) == [f"<answer>{c}</answer>" for c in "ABCD"]
    for rows in (train, test):  # classes balanced: 64/64/64/64 and 16/16/16/16
        per_class = {c: sum(r["solution"] == f"<answer>{c}</answer>" for r in rows) for c in "ABCD"}
        assert set(per_class.values()) == {len(rows) // 4}
    kinds = {k: sum(r["response_kind"] == k for r in train) for k in ("correct", "inconsistent", "repetitive")}
    assert kinds == {"correct": 256 - 38 - 26, "inconsistent": round(0.15 * 256), "repetitive": round(0.10 * 256)}
    assert files.counts["train"]["response_kinds"] == kinds
    assert all(r["response_kind"] == "correct" for r in test)
    assert all(r["path"].startswith("videos/") for r in train)  # relative paths


def test_task_corpus_covers_every_prompt_and_colour_response(samples):
    corpus = task_corpus(ALL_TYPES)
    assert len(corpus) == len(set(corpus))
    for s in samples:
        assert question_text(s) in corpus
        if s.extra["task"] == "color":
            assert s.response in corpus or s.extra["response_kind"] != "correct"
    assert any("<answer>" in t for t in corpus)


@pytest.mark.parametrize("bad", [dict(types=("colour",)), dict(size=55), dict(frames=7), dict(difficulty="brutal"),
                                 dict(flawed_inconsistent=0.7, flawed_repetitive=0.5), dict(mix=(1.0, 2.0))])
def test_bad_specs_are_refused_with_the_field_named(bad):
    with pytest.raises(ConfigError) as e:
        SynthSpec(**bad)
    assert next(iter(bad)).split("_")[0] in str(e.value)


def test_synth_cli_writes_the_tokenizer_corpus_build_tiny_reads(tmp_path):
    """`veripo data synth --corpus FILE` writes what `veripo model build-tiny --corpus FILE` reads: one text line
    each, covering every prompt line and every response of the task."""
    from veripo.cli import main

    corpus = tmp_path / "corpus.txt"
    assert main(["data", "synth", "--out", str(tmp_path / "task"), "--n-train", "4", "--n-val", "0",
                 "--n-test", "0", "--types", "color,direction,order", "--corpus", str(corpus)]) == 0
    lines = corpus.read_text().splitlines()
    assert lines and all(line.strip() for line in lines) and len(lines) == len(set(lines))
    rows = [json.loads(x) for x in (tmp_path / "task" / "train.jsonl").read_text().splitlines()]
    for row in rows:
        if row["response_kind"] == "correct":
            assert row["response"] in lines
    assert any("Wait, " in line for line in lines)  # the reflective responses too


def test_flawed_types_limits_the_flawed_responses_to_those_tasks_and_leaves_the_default_unchanged():
    base = dict(types=("color", "direction", "order"), n_train=90, n_val=0, n_test=0, seed=3,
                flawed_inconsistent=0.2, flawed_repetitive=0.1, flawed_reflective=0.1)
    every = build_rows(SynthSpec(**base), "train")
    some = build_rows(SynthSpec(**base, flawed_types=("color", "order")), "train")
    kind = lambda r: r["response_kind"]
    task = lambda r: r["task"]
    assert {task(r) for r in every if kind(r) != "correct"} == {"color", "direction", "order"}
    assert {task(r) for r in some if kind(r) != "correct"} == {"color", "order"}
    eligible = sum(task(r) in ("color", "order") for r in some)
    assert sum(kind(r) != "correct" for r in some) == round(0.2 * eligible) + round(0.1 * eligible) * 2
    assert [task(r) for r in some] == [task(r) for r in every]  # the same rows and videos, only responses differ
    # the default (every type) draws exactly as before: the flawed rows of a one-type task are unchanged
    one = dict(types=("color",), n_train=40, n_val=0, n_test=0, seed=1, flawed_inconsistent=0.25)
    assert [kind(r) for r in build_rows(SynthSpec(**one), "train")] == \
        [kind(r) for r in build_rows(SynthSpec(**one, flawed_types=("color",)), "train")]
    with pytest.raises(ConfigError, match="flawed_types"):
        SynthSpec(types=("color",), flawed_types=("colour",))  # a misspelt type
    only_direction = dict(types=("direction",), n_train=20, n_val=0, n_test=0, flawed_inconsistent=0.5)
    rows = build_rows(SynthSpec(**only_direction, flawed_types=("color",)), "train")  # no eligible row: all correct
    assert {kind(r) for r in rows} == {"correct"}


def test_mix_as_a_list_a_mapping_or_command_line_text():
    types = ("color", "direction", "order")
    assert SynthSpec(types=types, mix=[1, 2, 1]).mix == (1.0, 2.0, 1.0)
    assert SynthSpec(types=types, mix={"direction": 2}).mix == (1.0, 2.0, 1.0)  # unnamed types weigh 1
    assert SynthSpec(types=("direction",), mix={"direction": 2, "color": 5}).mix == (2.0,)  # others ignored
    assert SynthSpec(types=types, mix="1,2,1").mix == SynthSpec(types=types, mix="{direction: 2}").mix
    assert SynthSpec(types=types, mix={}).mix == () == SynthSpec(types=types, mix="").mix
    with pytest.raises(ConfigError, match="colour"):
        SynthSpec(types=types, mix={"colour": 2})
    with pytest.raises(ConfigError, match="needs 3"):
        SynthSpec(types=types, mix=[1, 2])
