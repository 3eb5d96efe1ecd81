"""Video-R1 rows load as-is and convert; validation names every bad row by file:line; the data CLI."""
import json
from pathlib import Path

import numpy as np
import pytest

from veripo.cli import main
from veripo.data.convert import check_video, convert_video_r1, validate_file
from veripo.data.schema import load_samples
from veripo.errors import DataError
from veripo.video.write import write_mp4


def tiny_video(path):
    frames = np.full((4, 16, 16, 3), 40, dtype=np.uint8)
    frames[:, 4:12, 4:12] = (220, 40, 40)
    return write_mp4(path, frames, fps=4)


def video_r1_rows():
    """Rows in the exact shape of Video-R1-260k / Video-R1-COT-165k (spec/veripo-method.md §7)."""
    return [
        {"problem_id": 1, "problem": "What is the person doing?", "data_type": "video",
         "problem_type": "multiple choice", "options": ["A. running", "B. sitting", "C. eating", "D. sleeping"],
         "process": "<think>Let me think. The person stays in the chair, so sitting.</think>",
         "solution": "<answer>B</answer>", "path": "./LLaVA-Video-178K/clip1.mp4",
         "data_source": "LLaVA-Video-178K/0_30_s_academic_v0_1"},
        {"problem_id": 2, "problem": "How many collisions happen?", "data_type": "video",
         "problem_type": "numerical", "options": [], "process": "<think>Hmm, I count 3.</think>",
         "solution": "<answer>3</answer>", "path": "./CLEVRER/video_10000.mp4", "data_source": "CLEVRER"},
        {"problem_id": 3, "problem": "What does the sign say?", "data_type": "image", "problem_type": "OCR",
         "options": [], "process": "<think>The sign reads STOP.</think>", "solution": "<answer>STOP</answer>",
         "path": "./images/sign.png", "data_source": "TextVQA"},
        {"problem_id": 4, "problem": "What happens after the door opens?", "data_type": "video",
         "problem_type": "free-form", "options": [], "process": "<think>Wait, he walks in.</think>",
         "solution": "<answer>He walks in.</answer>", "path": "./LLaVA-Video-178K/clip1.mp4",
         "data_source": "LLaVA-Video-178K/free"},
        {"problem_id": 5, "problem": "How far is the chair from the table in metres?", "data_type": "video",
         "problem_type": "regression", "options": [], "process": "<think>About 2.5.</think>",
         "solution": "<answer>2.5</answer>", "path": "./CLEVRER/video_10000.mp4", "data_source": "OpenSpaces"},
    ]


@pytest.fixture()
def video_r1_dir(tmp_path):
    from PIL import Image

    tiny_video(tmp_path / "LLaVA-Video-178K" / "clip1.mp4")
    tiny_video(tmp_path / "CLEVRER" / "video_10000.mp4")
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "images" / "sign.png")
    return tmp_path


def test_video_r1_rows_load_as_is(video_r1_dir):
    src = video_r1_dir / "Video-R1-COT-165k.json"
    src.write_text(json.dumps(video_r1_rows()))
    samples = load_samples(src, strict=True)
    assert [s.problem_type for s in samples] == ["multiple choice", "numerical", "OCR", "free-form", "regression"]
    assert samples[0].answer == "B" and samples[0].extra["process"].startswith("<think>")
    assert all(Path(s.path).exists() for s in samples)


def test_convert_keeps_good_rows_and_names_bad_ones(video_r1_dir, tmp_path):
    rows = video_r1_rows()
    rows[0]["problem_type"] = "Multiple Choice"  # spelling variants are mapped
    rows.append(dict(rows[1], problem="A second question with a reused id"))  # item 6: duplicate id 2
    rows.append(dict(rows[0], problem_id=7, solution="<answer>E</answer>"))  # item 7: answer not an option
    rows.append(dict(rows[1], problem_id=8, solution="<answer>three</answer>"))  # item 8: not a number
    rows.append({"problem_id": 9, "problem_type": "numerical", "solution": "1"})  # item 9: no problem
    rows.append("not an object")  # item 10
    src = video_r1_dir / "Video-R1-260k.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "out" / "video_r1.jsonl"

    report = convert_video_r1(src, out)
    assert (report.n_rows, report.n_ok, report.n_bad) == (10, 6, 4)
    where = [e.split(": ", 1)[0] for e in report.errors]
    assert where == [f"{src}:item {i}" for i in (7, 8, 9, 10)]
    assert "'E' is not one of the option letters ABCD" in report.errors[0]
    assert "not a number" in report.errors[1] and "problem" in report.errors[2]
    assert any("renamed to '2#2'" in n for n in report.notes)

    converted = load_samples(out, strict=True)
    assert [s.problem_id for s in converted] == ["1", "2", "3", "4", "5", "2#2"]
    assert converted[0].problem_type == "multiple choice"
    assert converted[0].response == rows[0]["process"] + "\n<answer>B</answer>"  # Video-R1's SFT target
    assert all(Path(s.path).exists() for s in converted)
    assert report.counts("data_type") == {"image": 1, "video": 5}

    only_video = convert_video_r1(src, tmp_path / "v.jsonl", data_types=("video",))
    assert only_video.counts("data_type") == {"video": 5}


def test_validate_names_file_and_line_and_strict_raises(tmp_path):
    good = {"problem_id": "a", "problem": "q?", "problem_type": "multiple choice", "options": ["A. x", "B. y"],
            "solution": "<answer>A</answer>", "data_type": "text"}
    lines = [json.dumps(good), "", "{broken json", json.dumps(dict(good, problem_id="b", solution="C")),
             json.dumps(dict(good, problem_id="a")), json.dumps(dict(good, problem_id="c", problem_type="essay"))]
    f = tmp_path / "rows.jsonl"
    f.write_text("\n".join(lines) + "\n")
    report = validate_file(f)
    assert report.n_ok == 1 and report.n_bad == 4
    assert [e.split(": ", 1)[0] for e in report.errors] == [f"{f}:{n}" for n in (3, 4, 5, 6)]
    assert "not valid JSON" in report.errors[0] and "'C' is not one of the option letters AB" in report.errors[1]
    assert "duplicate problem_id 'a'" in report.errors[2] and "essay" in report.errors[3]
    with pytest.raises(DataError, match=f"{f}:3: not valid JSON"):
        validate_file(f, strict=True)


def test_check_videos_reports_missing_empty_and_corrupt_by_row(tmp_path):
    tiny_video(tmp_path / "ok.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    base = {"problem": "q?", "problem_type": "numerical", "solution": "<answer>2</answer>", "data_type": "video"}
    names = ["ok.mp4", "missing.mp4", "empty.mp4", "corrupt.mp4", "ok.mp4"]
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps(dict(base, problem_id=i, path=n)) + "\n" for i, n in enumerate(names)))
    assert validate_file(f).n_bad == 0  # without --check-videos the files are not opened
    report = validate_file(f, check_videos=True)
    assert report.n_ok == 2
    assert [e.split(": ", 1)[0] for e in report.errors] == [f"{f}:{n}" for n in (2, 3, 4)]
    assert "video not found" in report.errors[0] and "missing.mp4" in report.errors[0]
    assert "empty" in report.errors[1] and "cannot decode video" in report.errors[2]
    assert check_video(tmp_path / "ok.mp4") is None


def test_data_cli_synth_validate_convert(video_r1_dir, tmp_path, capsys):
    out = tmp_path / "task"
    argv = ["data", "synth", "--out", str(out), "--n-train", "4", "--n-val", "0", "--n-test", "2",
            "--types", "color,count", "--mix", "1,1", "--seed", "2"]
    assert main(argv) == 0
    assert "train: 4 rows" in capsys.readouterr().out
    assert main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["data", "validate", str(out / "train.jsonl"), "--check-videos", "--strict"]) == 0
    assert "4 rows, 4 ok, 0 bad" in capsys.readouterr().out
    assert main(["data", "synth", "--n-train", "4"]) == 2  # no --out: clear error, no traceback
    assert "--out" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(out), "--types", "colour"]) == 2
    assert "types" in capsys.readouterr().err

    bad = out / "train.jsonl"
    bad.write_text(bad.read_text() + '{"problem_id": "x"}\n')
    assert main(["data", "validate", str(bad)]) == 0
    assert main(["data", "validate", str(bad), "--strict"]) == 1
    assert f"{bad}:5: missing required field(s)" in capsys.readouterr().out

    src = video_r1_dir / "Video-R1-260k.json"
    src.write_text(json.dumps(video_r1_rows()))
    assert main(["data", "convert-video-r1", str(src), str(tmp_path / "r1.jsonl"), "--data-types", "video"]) == 0
    assert "wrote 4 rows" in capsys.readouterr().out
    assert len(load_samples(tmp_path / "r1.jsonl", strict=True)) == 4
