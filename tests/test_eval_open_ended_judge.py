"""The LLM judge for MMVU's open-ended questions, against real servers on 127.0.0.1 through the real ``openai``
client (the verifier's OpenAIJudge transport): a judge that answers CORRECT / INCORRECT by a rule, one that
answers garbage, one that sleeps past the timeout, and a dead port. Judge failures leave items ``unjudged``
(named, counted, left out of the figures); the default (no judge) scores do not change.

Fixture tests/fixtures/eval/mmvu/predictions_judge.jsonl, by hand:
  MC   b6a1c3 gold B, answer B -> 1;  c7d2e4 gold A, answer C -> 0            => overall (MC) = 1/2
  open d8e3f5 "Impasto" vs "impasto" -> CORRECT; f1a2b3 "Carbon dioxide" vs "Oxygen" -> INCORRECT;
       f4c5d6 "Newton" vs "Newton" -> CORRECT; f7e8f9 "???" -> the rule judge answers garbage -> unjudged
  => open-ended accuracy 2/3 (3 judged, 1 unjudged); all questions (1 + 0 + 1 + 0 + 1) / 5 = 0.6
"""
import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI

from veripo.rollout.engine import EngineCapabilities
from veripo.cli import main
from veripo.eval.answer_judge import OpenAnswer, build_answer_judge, parse_correctness
from veripo.eval.benchmarks import get_adapter
from veripo.eval.open_ended import score_predictions
from veripo.eval.predictions import score_predictions_file
from veripo.eval.runner import EvalSettings, run_eval
from veripo.generation.types import Completion
from veripo.verifier.serving import BackgroundServer, free_port
from veripo.video.write import write_mp4

FIX = Path(__file__).parent / "fixtures" / "eval" / "mmvu"
PREDS = FIX / "predictions_judge.jsonl"


def chat_reply(content):
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def judge_app(answer):
    """An OpenAI-compatible chat endpoint whose reply is ``answer(prompt)`` (a string, or ('sleep', s))."""
    app, calls = FastAPI(), []

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        prompt = body["messages"][-1]["content"]
        calls.append(body)
        reply = answer(prompt)
        if isinstance(reply, tuple):
            await asyncio.sleep(reply[1])
            reply = "CORRECT"
        return chat_reply(reply)

    return app, calls


def rule_judge(prompt):
    """Answers like a judge LLM: CORRECT iff the model's answer equals the reference (case-insensitive);
    garbage when the answer is unreadable ("???")."""
    gold = re.search(r"^Reference answer: (.*)$", prompt, re.M).group(1)
    answer = re.search(r"^Model's answer: (.*)$", prompt, re.M).group(1)
    if "???" in answer:
        return "Hmm, I cannot read that answer."
    return "CORRECT" if answer.strip().lower() == gold.strip().lower() else "INCORRECT"


@pytest.fixture(scope="module")
def rule_server():
    app, calls = judge_app(rule_judge)
    with BackgroundServer(app) as url:
        yield url + "/v1", calls


def fast_judge(url, **kw):
    return build_answer_judge(url, model="rule-judge", **{"retries": 1, "backoff_s": 0.01, **kw})


@pytest.mark.parametrize("reply, verdict", [
    ("CORRECT", "correct"), ("INCORRECT", "incorrect"), (" correct.\n", "correct"), ("**INCORRECT**", "incorrect"),
    ('"Correct"', "correct"), ("CORRECT, because the answer names it", None), ("Verdict: CORRECT", None),
    ("not correct", None), ("CORRECT INCORRECT", None), ("", None), (None, None), ("yes", None),
])
def test_parse_correctness_is_strict(reply, verdict):
    assert parse_correctness(reply) == verdict


def test_rule_judge_scores_open_ended_apart(rule_server):
    url, calls = rule_server
    n_before = len(calls)
    judge = fast_judge(url)
    warnings = []
    res, items = score_predictions(get_adapter("mmvu"), PREDS, judge=judge, log=warnings.append)
    # the multiple-choice figures are exactly the no-judge ones
    assert res["overall"] == pytest.approx(0.5) and res["n_scored"] == 2 and res["tasks"]["Art"]["score"] == 0.0
    oe = res["open_ended"]
    assert (oe["n"], oe["n_judged"], oe["n_correct"], oe["n_unjudged"]) == (4, 3, 2, 1)
    assert oe["accuracy"] == pytest.approx(2 / 3) and oe["prompt_version"] == "v1"
    assert oe["judge"] == f"openai:rule-judge@{url}"
    assert oe["tasks"]["Art"] == {"score": 1.0, "n": 1} and oe["tasks"]["Chemistry"] == {"score": 0.0, "n": 1}
    assert res["overall_all_questions"] == pytest.approx(3 / 5) and res["n_scored_all_questions"] == 5
    assert res["overall_all_questions_by_match"]["lenient"] == pytest.approx(3 / 5)
    assert res["n_malformed"] == 0
    # the unjudged item is named, with the reason, in the result and in a warning
    assert len(oe["unjudged"]) == 1 and "f7e8f9" in oe["unjudged"][0] and f"{PREDS}:6" in oe["unjudged"][0]
    assert "unparseable verdict" in oe["unjudged"][0] and "cannot read" in oe["unjudged"][0]
    assert warnings == [f"warning: {oe['unjudged'][0]}"]
    judged = {it.item_id: it for it in items if it.kind == "judged"}
    assert judged["d8e3f5"].score == 1.0 and judged["d8e3f5"].pred == "impasto" and judged["d8e3f5"].gold == "Impasto"
    # 3 judged items once each + the garbage one twice (1 retry); the prompt carries question, gold, answer
    prompts = [c["messages"][0]["content"] for c in calls[n_before:]]
    assert len(prompts) == 5 and sum("??? (unreadable)" in p for p in prompts) == 2
    assert any("Question: Which gas is released in the reaction?" in p and "Reference answer: Carbon dioxide" in p
               and "Model's answer: Oxygen" in p for p in prompts)
    assert {c["model"] for c in calls[n_before:]} == {"rule-judge"}


def test_no_judge_keeps_todays_numbers():
    res, items = score_predictions(get_adapter("mmvu"), PREDS)
    assert res == score_predictions_file(get_adapter("mmvu"), PREDS)[0]
    assert res["overall"] == pytest.approx(0.5) and res["n_scored"] == 2 and "open_ended" not in res
    assert res["n_malformed"] == 4 and all("LLM judge" in m for m in res["malformed"])
    notes = []
    assert len(get_adapter("mmvu").read_rows(FIX / "validation.json", notes)) == 2   # open-ended still skipped
    assert len(notes) == 1 and "skipped: open-ended question (MC subset only" in notes[0]


def test_garbage_slow_and_dead_judges_never_lose_the_run():
    garbage_app, garbage_calls = judge_app(lambda p: "The answer looks fine to me.")
    slow_app, _ = judge_app(lambda p: ("sleep", 1.5))
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with BackgroundServer(garbage_app) as g, BackgroundServer(slow_app) as s:
        for url, reason, kw in ((g + "/v1", "unparseable verdict", {}), (s + "/v1", "Timeout", {"timeout_s": 0.3}),
                                (dead, "Connection", {})):
            res, items = score_predictions(get_adapter("mmvu"), PREDS, judge=fast_judge(url, **kw), log=lambda m: None)
            oe = res["open_ended"]
            assert (oe["n_judged"], oe["n_unjudged"], oe["accuracy"]) == (0, 4, None), url
            assert all(reason in m for m in oe["unjudged"]), oe["unjudged"]
            assert sorted(re.search(r"item (\w+) unjudged", m).group(1) for m in oe["unjudged"]) == [
                "d8e3f5", "f1a2b3", "f4c5d6", "f7e8f9"]
            assert res["overall"] == pytest.approx(0.5) and res["overall_all_questions"] == pytest.approx(0.5)
            assert res["n_scored_all_questions"] == 2 and len(items) == 2
    assert len(garbage_calls) == 8   # 4 items x (1 try + 1 retry)


def test_a_judge_object_that_raises_is_contained():
    class Broken:
        name = "broken"

        def judge_many(self, items):
            raise RuntimeError("pool died")

    res, _ = score_predictions(get_adapter("mmvu"), PREDS, judge=Broken(), log=lambda m: None)
    assert res["open_ended"]["n_unjudged"] == 4 and "pool died" in res["open_ended"]["unjudged"][0]


def test_answer_judge_one_item(rule_server):
    url, _ = rule_server
    judge = fast_judge(url)
    res = judge.judge_many([OpenAnswer("q", "Name the technique.", "Impasto", "IMPASTO"),
                            OpenAnswer("r", "Name the technique.", "Impasto", "")])
    assert [r.verdict for r in res] == ["correct", "incorrect"]   # an empty answer is sent as "(empty)"


def test_cli_score_with_judge(rule_server, tmp_path, capsys):
    url, _ = rule_server
    out = tmp_path / "scores.json"
    assert main(["eval", "score", "--benchmark", "mmvu", "--predictions", str(PREDS), "--out", str(out),
                 "--judge-url", url, "--judge-model", "rule-judge", "--judge-api-key", "sk-test"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert res == json.loads(out.read_text())
    assert res["overall"] == pytest.approx(0.5) and res["open_ended"]["accuracy"] == pytest.approx(2 / 3)
    assert "warning:" in captured.err and "f7e8f9 unjudged" in captured.err
    assert "open-ended (LLM judge" in captured.err and "sk-test" not in captured.out
    # a dead endpoint: still exit 0, every open-ended item named as unjudged
    dead = f"http://127.0.0.1:{free_port()}/v1"
    assert main(["eval", "score", "--benchmark", "mmvu", "--predictions", str(PREDS), "--judge-url", dead]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["open_ended"]["n_unjudged"] == 4 and captured.err.count("unjudged (") == 4
    # a benchmark without open-ended questions refuses the flag with a clear message
    vsi = Path(__file__).parent / "fixtures" / "eval" / "vsibench" / "predictions.jsonl"
    assert main(["eval", "score", "--benchmark", "vsibench", "--predictions", str(vsi), "--judge-url", url]) == 2
    assert "no open-ended questions" in capsys.readouterr().err


class ScriptedEngine:
    capabilities = EngineCapabilities(prompt_modes=True)  # reads .reasoning, as the hf engine does

    def __init__(self, responses):
        self.responses, self.reasoning, self.calls = responses, True, []

    def generate(self, samples, n=1, temperature=0.0, max_new_tokens=256):
        self.calls.append(samples)
        return [[Completion(text=self.responses[s.problem_id], token_ids=[1], logps=[], finish_reason="stop")]
                for s in samples]


def test_eval_run_with_and_without_judge(rule_server, tmp_path):
    url, _ = rule_server
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    for rel in ("Chemistry/12.mp4", "Art/3.mp4", "Art/4.mp4"):
        write_mp4(tmp_path / "videos" / rel, frames, fps=4)
    engine = ScriptedEngine({"mmvu:b6a1c3": "<answer>B</answer>", "mmvu:c7d2e4": "<answer>A</answer>",
                             "mmvu:d8e3f5": "<think>thick paint</think><answer>Impasto</answer>"})
    settings = EvalSettings(benchmark="mmvu", annotations=str(FIX / "validation.json"),
                            video_dir=str(tmp_path / "videos"), model="double", batch_size=4)
    out = tmp_path / "run"
    plain = run_eval(settings, engine, out, judge_fn=None, log=lambda m: None)
    assert plain["overall"] == 1.0 and plain["n_scored"] == 2 and plain["counts"]["set_aside"] == 1
    assert "open_ended" not in plain and "skipped: open-ended" in plain["set_aside"][0]
    # same folder with the judge: only the open-ended question is generated now, then judged
    logs = []
    judged = run_eval(settings, engine, out, judge_fn=None, log=logs.append, answer_judge=fast_judge(url))
    assert [[s.problem_id for s in c] for c in engine.calls] == [["mmvu:b6a1c3", "mmvu:c7d2e4"], ["mmvu:d8e3f5"]]
    open_sample = engine.calls[1][0]
    assert open_sample.problem_type == "free-form" and open_sample.solution == "Impasto"
    assert open_sample.path.endswith("Art/4.mp4")
    assert judged["overall"] == 1.0 and judged["n_scored"] == 2 and judged["counts"]["set_aside"] == 0
    assert judged["open_ended"]["accuracy"] == 1.0 and judged["overall_all_questions"] == 1.0
    assert judged["n_scored_all_questions"] == 3 and any("open-ended (LLM judge" in m for m in logs)
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [s["kind"] for s in scores] == ["mc", "mc", "judged"]
    # rerun without the judge: the open-ended prediction is reported, the MC score is unchanged
    again = run_eval(settings, engine, out, judge_fn=None, log=lambda m: None)
    assert again["overall"] == 1.0 and again["n_scored"] == 2 and again["n_malformed"] == 1
