"""Each benchmark adapter on a small fixture in the benchmark's published format."""
import json
from pathlib import Path

import pytest

from veripo.errors import DataError
from veripo.eval.benchmarks import get_adapter
from veripo.eval.predictions import score_prediction_rows

FIX = Path(__file__).parent / "fixtures" / "eval"


def rows_of(name, rel):
    errors = []
    rows = get_adapter(name).read_rows(FIX / rel, errors)
    return rows, errors


def score(name, row, response, match="strict"):
    return get_adapter(name).score_row(row, response, match)


def test_vsibench_parquet_rows_and_types():
    rows, errors = rows_of("vsibench", "vsibench/test-00000-of-00001.parquet")
    assert len(rows) == 8 and not errors
    by_id = {r["id"]: r for _, r in rows}
    counting = get_adapter("vsibench").to_sample(by_id[1])
    assert counting.problem_type == "regression" and counting.solution == "4" and counting.options == []
    direction = get_adapter("vsibench").to_sample(by_id[4])
    assert direction.problem_type == "multiple choice" and direction.solution == "C"
    assert direction.options[2] == "C. back-left" and direction.extra["task"] == "object_rel_direction_hard"
    # counting is MRA in the official scorer: 5 vs 4 -> 0.6, not 0
    assert score("vsibench", by_id[1], "<answer>5</answer>").score == pytest.approx(0.6)


def test_vsibench_video_layout(tmp_path):
    rows, _ = rows_of("vsibench", "vsibench/test-00000-of-00001.parquet")
    row = rows[1][1]
    video = tmp_path / row["dataset"] / f"{row['scene_name']}.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"x")
    assert get_adapter("vsibench").to_sample(row, tmp_path).path == str(video)
    with pytest.raises(FileNotFoundError, match="video not found"):
        get_adapter("vsibench").to_sample(rows[0][1], tmp_path)


def test_videomme_parquet():
    rows, _ = rows_of("videomme", "videomme")
    assert [r["question_id"] for _, r in rows] == ["001-1", "001-2", "301-1"]
    row = rows[0][1]
    assert score("videomme", row, "<answer>C</answer>").score == 1.0
    assert score("videomme", row, "The best answer is C.", "lenient").score == 1.0
    res = get_adapter("videomme").aggregate([score("videomme", r, "<answer>C</answer>") for _, r in rows])
    assert res["overall"] == pytest.approx(1 / 3)
    assert res["tasks"]["Counting Problem"] == {"score": 0.5, "n": 2}
    assert res["groups"]["duration"]["short"]["n"] == 2


def test_mmvu_mc_subset_and_video_path(tmp_path):
    rows, notes = rows_of("mmvu", "mmvu/validation.json")
    assert len(rows) == 2 and len(notes) == 1 and "skipped: open-ended" in notes[0]
    sample = get_adapter("mmvu").to_sample(rows[1][1])
    assert sample.options == ["A. Impasto", "B. Glazing", "C. Scumbling", "D. Sgraffito"]  # empty E dropped
    assert sample.extra["task"] == "Art"
    (tmp_path / "Chemistry").mkdir()
    (tmp_path / "Chemistry" / "12.mp4").write_bytes(b"x")
    assert get_adapter("mmvu").to_sample(rows[0][1], tmp_path).path.endswith("Chemistry/12.mp4")


def test_tomato_folder_answer_index_to_letter():
    rows, _ = rows_of("tomato", "tomato/data")
    by = {get_adapter("tomato").item_id(r): r for _, r in rows}
    assert set(by) == {"count-0", "direction-0", "direction-1"}
    s = get_adapter("tomato").to_sample(by["direction-0"])
    assert s.solution == "C" and s.options[2] == "C. Right." and s.extra["task"] == "direction"
    assert score("tomato", by["count-0"], "<answer>D</answer>").score == 1.0   # answer index 3


def test_lvbench_flattens_and_parses_inline_options():
    rows, _ = rows_of("lvbench", "lvbench/video_info.meta.jsonl")
    assert [r["uid"] for _, r in rows] == ["1", "2", "3"]
    s = get_adapter("lvbench").to_sample(rows[1][1])
    assert s.problem == "Why does the dog run away?"
    assert s.options == ["A. It is scared", "B. It is hungry", "C. It hears its owner", "D. It is chasing a ball"]
    items = [score("lvbench", r, "<answer>A</answer>") for _, r in rows]
    res = get_adapter("lvbench").aggregate(items)
    assert res["overall"] == pytest.approx(1 / 3)
    assert res["tasks"]["reasoning"]["score"] == 1.0 and res["tasks"]["entity recognition"]["score"] == 0.0


def test_videommmu_tracks_and_open_question():
    rows, _ = rows_of("videommmu", "videommmu")
    tasks = [get_adapter("videommmu").task_of(r) for _, r in rows]
    assert sorted(tasks) == ["Adaptation", "Perception", "Perception"]
    open_row = next(r for _, r in rows if r["question_type"] == "open")
    assert score("videommmu", open_row, "<answer>36</answer>").score == 1.0
    mc_row = next(r for _, r in rows if r["id"] == "perception_Art_1")
    assert get_adapter("videommmu").to_sample(mc_row).options[1] == "B. Blue"
    assert score("videommmu", mc_row, "<answer>B</answer>").score == 1.0


def test_mvbench_answer_text_to_letter(tmp_path):
    rows, _ = rows_of("mvbench", "mvbench/json")
    first = rows[0][1]
    s = get_adapter("mvbench").to_sample(first)
    assert s.solution == "A" and s.extra["task"] == "action_sequence"
    video = tmp_path / "star" / "Charades_segment" / "3MSZA.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"x")
    assert get_adapter("mvbench").to_sample(first, tmp_path).path == str(video)


def test_tempcompass_nested_multi_choice():
    rows, _ = rows_of("tempcompass", "tempcompass/questions/multi-choice.json")
    assert sorted(r["dim"] for _, r in rows) == ["direction", "order", "speed"]
    row = next(r for _, r in rows if r["dim"] == "direction")
    s = get_adapter("tempcompass").to_sample(row)
    assert s.problem == "Which direction is the car moving?" and s.solution == "B" and len(s.options) == 4
    assert score("tempcompass", row, "<answer>B. right</answer>", "lenient").score == 1.0


def test_malformed_rows_are_reported_not_fatal(tmp_path):
    bad = tmp_path / "preds.jsonl"
    good = {"video_id": "v1", "dim": "speed", "question": "Fast?\nA. yes\nB. no", "answer": "A. yes", "response": "A"}
    bad.write_text("\n".join([json.dumps(good), "not json",
                              json.dumps({**good, "answer": "maybe", "question": "Q2\nA. x\nB. y"}),
                              json.dumps(good)]) + "\n")
    from veripo.eval.benchmarks import read_records
    items, errors = score_prediction_rows(get_adapter("tempcompass"), read_records(bad))
    assert len(items) == 1
    assert [e.split(": ", 1)[0] for e in errors] == [f"{bad}:2", f"{bad}:3", f"{bad}:4"]
    assert "duplicate" in errors[2]


def test_unknown_benchmark_names_choices():
    with pytest.raises(DataError, match="vsibench"):
        get_adapter("nope")
    assert get_adapter("VSI-Bench").name == "vsibench"
