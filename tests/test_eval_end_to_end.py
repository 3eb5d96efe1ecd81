"""`veripo eval run` end to end: the real HFEngine on the offline tiny Qwen2.5-VL, generated synthetic videos."""
import json

import pytest

from veripo.cli import main
from veripo.data.synthetic import SynthSpec, generate_task
from kit_fixtures import tiny_kit_dir  # noqa: E402,F401  (session fixture)


@pytest.fixture(scope="module")
def synthetic_test_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    files = generate_task(root, SynthSpec(n_train=2, n_val=1, n_test=3, types=("color",)), progress=False)
    return files.test


def test_eval_run_tiny_model_resumes_and_reports(tiny_kit_dir, synthetic_test_split, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "iter0"
    args = ["eval", "run", "--benchmark", "synthetic", "--annotations", str(synthetic_test_split),
            "--model", str(tiny_kit_dir), "--out", str(out), "--engine", "hf", "--batch-size", "2",
            "--max-new-tokens", "8", "--num-frames", "4", "--min-pixels", str(56 * 56), "--max-pixels", str(56 * 56)]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["n_scored"] == 3 and res["n_malformed"] == 0 and res["engine"] == "HFEngine"
    assert 0.0 <= res["overall"] <= 1.0 and set(res["tasks"]) == {"color"}
    assert res["settings"]["num_frames"] == 4 and res["settings"]["max_pixels"] == 56 * 56
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3
    assert all(isinstance(p["response"], str) and 1 <= p["veripo_meta"]["completion_tokens"] <= 8 for p in preds)
    assert res["reasoning"]["mean_response_tokens"] == pytest.approx(
        sum(p["veripo_meta"]["completion_tokens"] for p in preds) / 3)

    # rerun: nothing left to generate, the same scores
    assert main(args) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["counts"]["answered_this_run"] == 0 and again["overall"] == res["overall"]

    # score the run's predictions with `eval score`, then compare two "checkpoints" in a report
    capsys.readouterr()
    assert main(["eval", "score", "--benchmark", "synthetic", "--predictions", str(out / "predictions.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out)["overall"] == pytest.approx(res["overall"])
    assert main(["eval", "report", "--results", str(out), str(out), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.png").stat().st_size > 0
