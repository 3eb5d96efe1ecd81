"""Fault injection, bad input: each test injects one fault and asserts that the bad row is named (file:line),
counted, written to ``rejects.jsonl`` and set aside -- the rest of the file is used -- or that ``strict`` stops
at once. The CLI behaviours run as subprocesses (no traceback, exit code, the files left behind)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from veripo.data.schema import load_samples
from veripo.errors import DataError
from veripo.io_utils import BadRow, iter_jsonl, read_jsonl, write_rejects

from kit_fixtures import tiny_kit_dir  # noqa: F401
from train_fixtures import VIDEO, synth_task, task_kit  # noqa: F401

BAD_BYTE = b"\xff"
MC = {"problem_id": "q1", "problem": "What colour?", "problem_type": "multiple choice", "data_type": "text",
      "options": ["A. red", "B. green"], "solution": "<answer>A</answer>"}


def cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "veripo.cli", *args], capture_output=True, text=True, env=e,
                          timeout=timeout)


def jsonl_bytes(rows: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def rows_with_bad_byte(n: int = 3) -> bytes:
    """n good rows with a non-UTF-8 byte injected into row 2's question."""
    good = [dict(MC, problem_id=f"q{i}") for i in range(n)]
    line2 = json.dumps(dict(MC, problem_id="bad")).encode().replace(b"What", b"Wh" + BAD_BYTE + b"t")
    return jsonl_bytes([good[0], line2, *good[1:]])


# ----------------------------------------------------------------------------------------- the reader
def test_a_non_utf8_byte_costs_one_row_named_file_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(rows_with_bad_byte(3))
    errors: list[str] = []
    rows = read_jsonl(path, errors)
    assert [r["problem_id"] for r in rows] == ["q0", "q1", "q2"]
    assert len(errors) == 1 and isinstance(errors[0], BadRow)
    assert errors[0].startswith(f"{path}:2: not valid UTF-8 (byte 0xff")
    with pytest.raises(DataError, match=r"rows.jsonl:2: not valid UTF-8"):  # no errors list: a clean error
        read_jsonl(path)


def test_a_line_over_the_size_limit_is_set_aside_unread(tmp_path, monkeypatch):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(jsonl_bytes([MC, dict(MC, problem_id="big", problem="x" * 5000), dict(MC, problem_id="q2")]))
    monkeypatch.setenv("VERIPO_MAX_LINE_BYTES", "1000")
    errors: list[str] = []
    assert [r["problem_id"] for r in iter_jsonl(path, errors)] == ["q1", "q2"]
    assert errors[0].startswith(f"{path}:2: line is ") and "1000-byte limit" in errors[0]


def test_rejects_file_keeps_row_number_reason_and_the_raw_line_escaped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(rows_with_bad_byte(2))
    errors: list[str] = []
    read_jsonl(path, errors)
    out = write_rejects(tmp_path / "out", errors + ["a plain message"])
    recs = read_jsonl(out)
    assert out.name == "rejects.jsonl" and len(recs) == 2
    assert recs[0]["file"] == str(path) and recs[0]["line"] == 2 and "UTF-8" in recs[0]["reason"]
    assert "Wh\\xfft" in recs[0]["raw"]  # the bad byte, escaped
    assert recs[1] == {"file": None, "line": None, "reason": "a plain message"}
    assert write_rejects(tmp_path / "out", []) is None and not out.exists()  # a clean rerun leaves none


# ----------------------------------------------------------------------------------------- data rows
def test_load_samples_sets_aside_bad_bytes_wrong_answer_letters_and_huge_questions(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(rows_with_bad_byte(2) + jsonl_bytes([
        dict(MC, problem_id="wrong-letter", solution="<answer>E</answer>"),
        dict(MC, problem_id="huge", problem="x" * 10_000_000),
    ]))
    errors: list[str] = []
    rows = load_samples(path, errors=errors)
    assert [r.problem_id for r in rows] == ["q0", "q1"]
    text = "\n".join(errors)
    assert f"{path}:2: not valid UTF-8" in text
    assert f"{path}:4: answer 'E' is not one of the option letters AB" in text
    assert f"{path}:5: question and options are 10000014 characters, over the 32000-character limit" in text
    assert load_samples(path, max_prompt_chars=0, errors=[])[-1].problem_id == "huge"  # the limit is configurable
    with pytest.raises(DataError, match=r"train.jsonl:2: not valid UTF-8"):
        load_samples(path, strict=True)


def test_data_validate_cli_names_the_bad_byte_row_without_a_traceback(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(rows_with_bad_byte(3))
    res = cli("data", "validate", str(path))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert f"{path}:2: not valid UTF-8" in res.stdout
    from veripo.cli import main

    assert main(["data", "validate", str(path), "--strict"]) == 1


# ----------------------------------------------------------------------------------------- sampler
@pytest.mark.parametrize("rows,per_step", [(3, 5), (5, 4), (7, 3)])
def test_a_step_never_draws_a_prompt_twice(rows, per_step, caplog):
    from veripo.train.sampler import PromptSampler

    s = PromptSampler(list(range(rows)), per_step, seed=1)
    for step in range(12):  # steps that straddle epochs included
        batch = s.batch(step)
        assert len(batch) == min(rows, per_step) and len(set(batch)) == len(batch), (step, batch)
    assert s.batch(3) == PromptSampler(list(range(rows)), per_step, seed=1).batch(3)  # still a function of the step
    if per_step > rows:
        assert "more than the 3 usable rows" in caplog.text


def test_a_prompt_over_the_token_limit_is_set_aside_naming_file_and_row(task_kit, synth_task, tmp_path):
    """data.max_prompt_tokens: the chat-templated prompt, tokenised as the batch builder does, over the limit
    costs that row (file:line, counted in the trainer's bad inputs); the run starts with the others."""
    from veripo.grpo.trainer import GRPOTrainer
    from veripo.models import load_policy
    from veripo.train.prompt_tokens import prompt_token_counter

    from test_grpo_trainer import grpo_cfg

    rows = [json.loads(line) for line in (synth_task / "train.jsonl").read_text().splitlines()[:4]]
    for r in rows:
        r["path"] = str(synth_task / r["path"])
    long = dict(rows[1], problem_id="long", problem=" ".join([rows[1]["problem"]] * 40))  # ~ 2 KB: under the chars
    path = tmp_path / "train.jsonl"                                                       # limit, over the tokens one
    path.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], long, *rows[1:]]))
    count = prompt_token_counter(load_policy(task_kit)[1])
    normal = max(count(s) for s in load_samples(path) if s.problem_id != "long")
    limit = normal + 8
    errors: list[str] = []
    kept = load_samples(path, errors=errors, max_prompt_tokens=limit, count_prompt_tokens=count)
    assert [s.problem_id for s in kept] == [r["problem_id"] for r in rows]
    assert len(errors) == 1 and errors[0].startswith(f"{path}:2: prompt is ")
    assert f"tokens, over the {limit}-token limit (data.max_prompt_tokens)" in errors[0]
    assert load_samples(path, max_prompt_tokens=0, count_prompt_tokens=count, errors=[])[1].problem_id == "long"
    trainer = GRPOTrainer(grpo_cfg(task_kit, path, tmp_path / "run", f"data.max_prompt_tokens={limit}"))
    assert "long" not in {s.problem_id for s in trainer.rows} and len(trainer.rows) == 4
    assert [(b.line, b.reason[:10]) for b in trainer.bad_inputs] == [(2, "prompt is ")]


# ----------------------------------------------------------------------------------------- rollout store
def _rollout(step: int, i: int) -> dict:
    return {"rollout_id": f"s{step}-r{i}", "step": step, "group_id": f"s{step}-g0", "sample": MC, "prompt": "p",
            "response": "<answer>A</answer>"}


def test_store_removes_a_torn_tail_with_its_step_so_the_step_is_sampled_again(tmp_path):
    from veripo.rollout.store import RolloutStore

    path = tmp_path / "rollouts.jsonl"
    step1 = jsonl_bytes([_rollout(1, i) for i in range(4)])
    step2 = jsonl_bytes([_rollout(2, i) for i in range(4)])
    path.write_bytes(step1 + step2[: len(step2) * 3 // 4 + 45])  # killed while writing step 2's 4th rollout
    store = RolloutStore(path)
    errors: list[str] = []
    stored = store.by_step(errors)
    assert sorted(stored) == [1] and len(stored[1]) == 4  # step 2 is absent: it will be sampled again, whole
    assert path.read_bytes() == step1  # the torn tail is gone from the file
    assert store.repaired.step == 2 and store.repaired.dropped_lines == 3 and store.repaired.line == 8
    assert len(errors) == 1 and errors[0].startswith(f"{path}:8: torn last line")
    assert "step 2 will be sampled again" in errors[0]
    assert RolloutStore(path).by_step([]) == {1: stored[1]}  # a clean file: nothing more removed
    # a fragment too short to name its step: only the fragment goes
    path.write_bytes(step1 + b'{"rollout_')
    store = RolloutStore(path)
    assert len(store.by_step([])[1]) == 4 and store.repaired.step is None and path.read_bytes() == step1


# ----------------------------------------------------------------------------------------- verifier
def test_verify_cli_sets_aside_a_bad_byte_row_and_writes_rejects(tmp_path):
    from veripo.verifier.examples import write_example_rollouts

    path = write_example_rollouts(tmp_path / "rollouts.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"response": "', b'"response": "' + BAD_BYTE, 1)
    path.write_bytes(b"".join(lines))
    res = cli("verify", "--rollouts", str(path), "--out", str(tmp_path / "out"), "--judge", "none", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert f"{path}:2: not valid UTF-8" in res.stdout
    stats = json.loads((tmp_path / "out" / "verify_stats.json").read_text())
    assert stats["malformed"] == 1 and stats["rollouts"] == len(lines) - 1
    rejects = read_jsonl(tmp_path / "out" / "rejects.jsonl")
    assert [(r["line"], r["reason"][:19]) for r in rejects] == [(2, "not valid UTF-8 (by")]


# ----------------------------------------------------------------------------------------- eval score
def test_eval_score_reader_sets_aside_a_bad_byte_line(tmp_path):
    from veripo.eval.benchmarks import get_adapter
    from veripo.eval.predictions import score_predictions_file

    adapter = get_adapter("vsibench")
    pred = tmp_path / "preds.jsonl"
    pred.write_bytes(b'{"response": "A", "q": "x' + BAD_BYTE + b'"}\n')
    result, items = score_predictions_file(adapter, pred, rejects_dir=tmp_path)
    assert result["n_malformed"] == 1 and result["malformed"][0].startswith(f"{pred}:1: not valid UTF-8")
    assert read_jsonl(tmp_path / "rejects.jsonl")[0]["line"] == 1


def test_eval_score_cli_writes_rejects_beside_its_output_and_a_clean_rerun_removes_them(tmp_path, capsys):
    from veripo.cli import main

    preds = Path(__file__).parent / "fixtures" / "eval" / "vsibench" / "predictions.jsonl"
    lines = preds.read_bytes().splitlines(keepends=True)[:4]
    no_response = json.loads(lines[2])
    no_response.pop("response")
    bad = [lines[0], lines[1].replace(b'"response": "', b'"response": "' + BAD_BYTE, 1),
           json.dumps(no_response).encode() + b"\n", lines[3]]
    path = tmp_path / "preds.jsonl"
    path.write_bytes(b"".join(bad))
    out = tmp_path / "scores" / "scores.json"
    assert main(["eval", "score", "--benchmark", "vsibench", "--predictions", str(path), "--out", str(out)]) == 0
    rejects = read_jsonl(out.parent / "rejects.jsonl")
    assert [(r["file"], r["line"]) for r in rejects] == [(str(path), 2), (str(path), 3)]
    assert rejects[0]["reason"].startswith("not valid UTF-8") and "\\xff" in rejects[0]["raw"]
    assert "missing 'response'" in rejects[1]["reason"]
    assert json.loads(out.read_text())["n_malformed"] == 2
    assert f"see {out.parent / 'rejects.jsonl'}" in capsys.readouterr().err
    path.write_bytes(lines[0] + lines[3])  # fixed input: the stale rejects file goes
    assert main(["eval", "score", "--benchmark", "vsibench", "--predictions", str(path), "--out", str(out)]) == 0
    assert not (out.parent / "rejects.jsonl").exists()
    path.write_bytes(b"".join(bad))  # without --out nothing is written beside the input
    assert main(["eval", "score", "--benchmark", "vsibench", "--predictions", str(path)]) == 0
    assert not (tmp_path / "rejects.jsonl").exists()


# ----------------------------------------------------------------------------------------- DPO pairs
def _pairs_file(task: Path, dest: Path, n: int = 4) -> list[dict]:
    rows = load_samples(task / "train.jsonl")[:n]
    pairs = [{"pair_id": f"p{i}", "prompt_id": s.problem_id, "kind": "quality", "sample": s.to_dict(),
              "prompt": s.problem, "chosen": "<think>red</think><answer>A</answer>",
              "rejected": "<think>blue</think><answer>B</answer>"} for i, s in enumerate(rows)]
    return pairs


def test_load_pairs_rejects_wrong_types_duplicates_and_bad_bytes_cleanly(synth_task, tmp_path):
    from veripo.dpo.pairs_data import load_pairs

    pairs = _pairs_file(synth_task, tmp_path)
    path = tmp_path / "pairs.jsonl"
    bad_byte = json.dumps(pairs[2]).encode().replace(b"red</think>", b"r" + BAD_BYTE + b"d</think>")
    path.write_bytes(jsonl_bytes([pairs[0], dict(pairs[1], chosen=42), bad_byte, pairs[3],
                                  dict(pairs[3], chosen="<answer>C</answer>")]))
    errors: list[str] = []
    loaded = load_pairs(path, errors)
    assert [p.pair_id for p, _ in loaded] == ["p0", "p3"]
    assert errors[0] == f"{path}:2: 'chosen' must be a str, got int '42'"
    assert errors[1].startswith(f"{path}:3: not valid UTF-8")
    assert errors[2] == f"{path}:5: duplicate pair_id 'p3' (the first one is kept)"
    with pytest.raises(DataError, match="pairs.jsonl:2: 'chosen' must be a str"):
        load_pairs(path, [], strict=True)


def test_readable_pairs_sets_aside_a_pair_whose_video_does_not_decode(synth_task, tmp_path):
    from veripo.dpo.pairs_data import load_pairs, readable_pairs
    from veripo.errors import VideoError
    from veripo.video.cache import FrameCache
    from veripo.video.sampling import VideoSampling

    pairs = _pairs_file(synth_task, tmp_path, n=3)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video" * 10)
    pairs[1]["sample"]["path"] = str(broken)
    for p in (pairs[0], pairs[2]):
        p["sample"]["path"] = str(synth_task / p["sample"]["path"])
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(jsonl_bytes(pairs))
    errors: list[str] = []
    sampling = VideoSampling(num_frames=4, min_pixels=3136, max_pixels=3136)
    kept = readable_pairs(load_pairs(path, errors), FrameCache(), sampling, errors)
    assert [p.pair_id for p, _ in kept] == ["p0", "p2"]
    assert len(errors) == 1 and errors[0].startswith("pair p1: ") and "broken.mp4" in errors[0]
    assert json.loads(errors[0].raw)["pair_id"] == "p1"  # the rejects file keeps the pair itself
    with pytest.raises(VideoError, match="pair p1"):
        readable_pairs(load_pairs(path, []), FrameCache(), sampling, [], strict=True)


@pytest.mark.slow
def test_dpo_cli_sets_aside_a_corrupt_video_pair_and_finishes(task_kit, synth_task, tmp_path):
    """Fault: one pair's video is corrupt, one row has chosen=42, one pair_id is repeated. Before: the DPO stage
    aborted (traceback) / trained the duplicate twice. Now: those rows are set aside, named, in rejects.jsonl."""
    pairs = _pairs_file(synth_task, tmp_path, n=4)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video" * 10)
    pairs[1]["sample"] = dict(pairs[1]["sample"], path=str(broken))
    for p in pairs:
        if p is not pairs[1]:
            p["sample"]["path"] = str(synth_task / p["sample"]["path"]) if not Path(p["sample"]["path"]).is_absolute() else p["sample"]["path"]
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(jsonl_bytes([*pairs, dict(pairs[2], chosen=42), pairs[3]]))
    out = tmp_path / "run"
    res = cli("dpo", f"model.path={task_kit}", "model.freeze_vision=false", f"pairs_file={path}", f"out_dir={out}",
              "tensorboard=false", "heldout_fraction=0", "batch_size=2", "epochs=1", *VIDEO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "pair p1" in res.stdout and "broken.mp4" in res.stdout
    rejects = read_jsonl(out / "rejects.jsonl")
    reasons = sorted(r["reason"][:25] for r in rejects)
    assert len(rejects) == 3, rejects
    assert any("'chosen' must be a str" in r["reason"] for r in rejects)
    assert any("duplicate pair_id 'p3'" in r["reason"] for r in rejects)
    assert any(r["file"] == "pair p1" and "broken.mp4" in r["reason"] for r in rejects), reasons
    assert (out / "final" / "done.json").exists()


@pytest.mark.slow
def test_grpo_cli_sets_aside_bad_rows_and_never_draws_a_prompt_twice(task_kit, synth_task, tmp_path):  # noqa: F811
    """Faults: a non-UTF-8 byte, an answer that is not an option letter, a 10 MB question, and prompts_per_step
    above the usable rows. Before: a traceback / the row trained on / duplicate rollout ids in one step. Now: the
    three rows are in rejects.jsonl and every rollout id is unique."""
    rows = [json.loads(line) for line in (synth_task / "train.jsonl").read_text().splitlines()[:3]]
    for r in rows:
        r["path"] = str(synth_task / r["path"])
    bad = [json.dumps(dict(rows[0], problem_id="badbyte")).encode().replace(b'"problem": "', b'"problem": "' + BAD_BYTE),
           dict(rows[1], problem_id="letter", solution="<answer>Z</answer>"),
           dict(rows[2], problem_id="huge", problem="x" * 10_000_000)]
    train = tmp_path / "train.jsonl"
    train.write_bytes(jsonl_bytes([rows[0], bad[0], rows[1], bad[1], rows[2], bad[2]]))
    out = tmp_path / "run"
    res = cli("grpo", f"model.path={task_kit}", "model.freeze_vision=false", f"data.train_file={train}",
              f"run.out_dir={out}", "rollout.prompts_per_step=8", "rollout.group_size=2", "rollout.max_new_tokens=8",
              "run.steps=1", "run.save_every=0", "run.tensorboard=false", *VIDEO, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert "more than the 3 usable rows" in res.stderr
    rejects = read_jsonl(out / "rejects.jsonl")
    assert [r["line"] for r in rejects] == [2, 4, 6]
    rollouts = read_jsonl(out / "rollouts.jsonl")
    ids = [r["rollout_id"] for r in rollouts]
    assert len(ids) == 3 * 2 and len(set(ids)) == len(ids)
    assert {r["sample"]["problem_id"] for r in rollouts} == {r["problem_id"] for r in rows}


def test_a_json_list_file_with_a_bad_byte_or_over_the_size_limit_is_refused_in_one_line(tmp_path, monkeypatch):
    path = tmp_path / "rows.json"
    path.write_bytes(b'[\n' + json.dumps(MC).encode() + b',\n{"problem_id": "x\xff"}\n]')
    with pytest.raises(DataError, match=r"rows.json:3: not valid UTF-8 \(byte 0xff\)"):
        load_samples(path)
    path.write_text(json.dumps([MC, dict(MC, problem_id="q2", solution="<answer>Q</answer>")]))
    errors: list[str] = []
    assert len(load_samples(path, errors=errors)) == 1 and errors[0].startswith(f"{path}:item 2: answer 'Q'")
    monkeypatch.setenv("VERIPO_MAX_JSON_FILE_BYTES", "100")
    with pytest.raises(DataError, match="over the 100-byte limit for a JSON file"):
        load_samples(path)
