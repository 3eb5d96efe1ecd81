"""`veripo eval score` end to end on the VSI-Bench fixture (hand-computed scores)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from veripo.cli import main

PREDS = Path(__file__).parent / "fixtures" / "eval" / "vsibench" / "predictions.jsonl"

# Per item (strict / lenient), see tests/fixtures/eval/make_fixtures.py VSI_RESPONSES:
#  counting 5 vs 4 -> MRA .6/.6; abs_distance "about 2 meters" vs 2.5 -> 0/.7; rel_dir_easy "$A$" -> 1/1;
#  rel_dir_hard "C. back-left" -> 0/1; route "A" vs B -> 0/0; room 20 -> 1/1; appearance "d" -> 1/1;
#  size "$100$." vs 80 -> .6/.6.  rel_direction = mean(easy, hard).  7 task types present.
STRICT = (0.6 + 0 + (1 + 0) / 2 + 0 + 1 + 1 + 0.6) / 7
LENIENT = (0.6 + 0.7 + (1 + 1) / 2 + 0 + 1 + 1 + 0.6) / 7


def test_score_main_strict_default(tmp_path, capsys):
    out = tmp_path / "scores.json"
    assert main(["eval", "score", "--benchmark", "vsibench", "--predictions", str(PREDS), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed == json.loads(out.read_text())
    assert printed["match"] == "strict"
    assert printed["overall"] == pytest.approx(STRICT)
    assert printed["overall_by_match"]["lenient"] == pytest.approx(LENIENT)
    assert printed["overall_micro"] == pytest.approx((0.6 + 0 + 1 + 0 + 0 + 1 + 1 + 0.6) / 8)
    assert printed["tasks"]["object_counting"] == {"score": pytest.approx(0.6), "n": 1}
    assert printed["n_scored"] == 8 and printed["n_malformed"] == 2
    assert f"{PREDS}:9" in captured.err and f"{PREDS}:10" in captured.err


def test_score_subprocess_lenient(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "veripo.cli", "eval", "score", "--benchmark", "vsibench",
                           "--predictions", str(PREDS), "--match", "lenient"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["overall"] == pytest.approx(LENIENT)
    assert res["task_scores_official"]["object_rel_direction"] == 1.0


def test_score_missing_file_is_a_clean_error(tmp_path, capsys):
    assert main(["eval", "score", "--benchmark", "vsibench", "--predictions", str(tmp_path / "none.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_list_names_every_benchmark(capsys):
    assert main(["eval", "list"]) == 0
    text = capsys.readouterr().out
    for name in ("vsibench", "videomme", "mmvu", "tomato", "lvbench", "videommmu", "mvbench", "tempcompass",
                 "synthetic"):
        assert name in text
