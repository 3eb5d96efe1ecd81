"""LLM judges against real servers on 127.0.0.1: the local OpenAI-compatible judge server (tiny model,
real ``openai`` client), a garbage server, a flaky one, one that sleeps past the timeout, a dead port;
and the in-process Hugging Face judge. Failures are retried, then ``unjudged`` and counted."""
import asyncio
import time

import openai
import pytest
from fastapi import FastAPI

from veripo.verifier.config import JudgeConfig, VerifierConfig
from veripo.verifier.examples import write_example_rollouts
from veripo.verifier.judge_server import create_judge_app
from veripo.verifier.judges import HFJudge, JudgeInput, OpenAIJudge
from veripo.verifier.local_model import LocalChatModel
from veripo.verifier.pipeline import Verifier, run_verification
from veripo.verifier.serving import BackgroundServer, free_port

ITEM = JudgeInput(question="What colour?", think="The ball is green, so the answer is B.", answer="B",
                  options=["A. red", "B. green"], problem_type="multiple choice")


def chat_reply(content):
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def scripted_server(replies):
    """Answers the i-th request with replies[i] (a string, an HTTP status int, or ('sleep', s))."""
    app, calls = FastAPI(), []

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        calls.append(body)
        r = replies[min(len(calls), len(replies)) - 1]
        if isinstance(r, tuple):
            await asyncio.sleep(r[1])
            return chat_reply('{"verdict": "CONSISTENT"}')
        if isinstance(r, int):
            from fastapi.responses import JSONResponse
            return JSONResponse({"error": "boom"}, status_code=r)
        return chat_reply(r)

    return app, calls


def judge_cfg(url, **kw):
    base = dict(kind="openai", url=url, model="m", retries=2, backoff_s=0.01, timeout_s=5.0, fallback="none")
    base.update(kw)
    return JudgeConfig(**base)


@pytest.fixture(scope="module")
def tiny_kit(tmp_path_factory):
    from veripo.models import build_tiny_kit

    return str(build_tiny_kit(tmp_path_factory.mktemp("judge") / "kit"))


@pytest.fixture(scope="module")
def judge_server(tiny_kit):
    with BackgroundServer(create_judge_app(tiny_kit, model_name="tiny-judge")) as url:
        yield url


def test_local_judge_server_speaks_openai(judge_server):
    client = openai.OpenAI(base_url=judge_server + "/v1", api_key="EMPTY", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny-judge"]
    r = client.chat.completions.create(model="tiny-judge", messages=[{"role": "user", "content": "Is it consistent?"}],
                                       max_tokens=6, temperature=0)
    assert len(r.choices) == 1 and r.choices[0].message.role == "assistant"
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    again = client.chat.completions.create(model="tiny-judge", messages=[{"role": "user", "content": "Is it consistent?"}],
                                           max_tokens=6, temperature=0)
    assert again.choices[0].message.content == r.choices[0].message.content  # greedy is deterministic
    many = client.chat.completions.create(model="tiny-judge", messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=5, temperature=1.0, n=3, seed=1)
    assert [c.index for c in many.choices] == [0, 1, 2] and many.usage.completion_tokens <= 15
    with pytest.raises(openai.BadRequestError, match="stream"):
        client.chat.completions.create(model="tiny-judge", messages=[{"role": "user", "content": "x"}], stream=True)


def test_judge_server_reports_its_busy_time_for_utilisation(judge_server):
    import json
    import urllib.request

    def metrics():
        with urllib.request.urlopen(judge_server + "/metrics") as r:
            return json.loads(r.read())

    before = metrics()
    client = openai.OpenAI(base_url=judge_server + "/v1", api_key="EMPTY", max_retries=0)
    t0 = time.monotonic()
    client.chat.completions.create(model="tiny-judge", messages=[{"role": "user", "content": "hi"}], max_tokens=8,
                                   temperature=0)
    wall = time.monotonic() - t0
    after = metrics()
    assert after["requests"] == before["requests"] + 1 and after["in_flight"] == 0 and after["errors"] == 0
    assert after["completion_tokens"] > before["completion_tokens"]
    busy = after["busy_s"] - before["busy_s"]
    assert 0 < busy <= wall  # generating is part of the request's wall time, never more


def test_busy_meter_counts_overlapping_requests_once():
    from veripo.verifier.judge_server import BusyMeter

    meter = BusyMeter()
    with meter:
        time.sleep(0.05)
        with meter:  # a second request while the first is in flight
            time.sleep(0.05)
        time.sleep(0.05)
    assert 0.14 <= meter.snapshot()["busy_s"] < 0.3  # 0.15 s of wall time, not 0.2 s of summed requests
    assert meter.snapshot()["requests"] == 2


def test_tiny_model_garbage_is_retried_then_unjudged(judge_server):
    judge = OpenAIJudge(judge_cfg(judge_server + "/v1", model="tiny-judge", retries=1, max_tokens=8))
    res = judge.judge_one(ITEM)
    assert res.verdict == "unjudged" and res.attempts == 2
    assert "unparseable verdict" in res.detail and res.judge.startswith("openai:tiny-judge@")


def test_garbage_flaky_slow_and_dead_endpoints():
    garbage_app, garbage_calls = scripted_server(["lorem ipsum dolor"])
    flaky_app, flaky_calls = scripted_server([500, "no idea", '{"verdict": "INCONSISTENT"}'])
    slow_app, _ = scripted_server([("sleep", 1.5)])
    with BackgroundServer(garbage_app) as g, BackgroundServer(flaky_app) as f, BackgroundServer(slow_app) as s:
        res = OpenAIJudge(judge_cfg(g + "/v1")).judge_one(ITEM)
        assert res.verdict == "unjudged" and res.attempts == 3 and len(garbage_calls) == 3
        assert "lorem ipsum" in res.detail
        res = OpenAIJudge(judge_cfg(f + "/v1")).judge_one(ITEM)
        assert res.verdict == "inconsistent" and res.attempts == 3
        assert flaky_calls[2]["temperature"] >= 0.7  # a garbage reply is retried with sampling
        res = OpenAIJudge(judge_cfg(s + "/v1", timeout_s=0.3, retries=1)).judge_one(ITEM)
        assert res.verdict == "unjudged" and "Timeout" in res.detail and res.attempts == 2
    dead = f"http://127.0.0.1:{free_port()}/v1"
    res = OpenAIJudge(judge_cfg(dead, retries=1)).judge_one(ITEM)
    assert res.verdict == "unjudged" and "Connection" in res.detail


def test_pipeline_counts_unjudged_and_falls_back_to_rule(tmp_path):
    path = write_example_rollouts(tmp_path / "rollouts.jsonl")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    cfg = VerifierConfig(judge=judge_cfg(dead, retries=1))
    stats = run_verification(path, tmp_path / "none", cfg, progress=False)
    assert stats["unjudged"] == stats["rollouts"] == 12 and stats["judged"] == 0 and stats["inconsistent"] == 0
    assert stats["rejection_reasons"]["unjudged"] == 12
    assert stats["pairs"]["quality"] == 0 and stats["pairs"]["reflective"] == 0  # nothing unjudged is chosen
    cfg = VerifierConfig(judge=judge_cfg(dead, retries=0, fallback="rule"))
    stats = run_verification(path, tmp_path / "rule", cfg, progress=False)
    assert stats["judge_fallbacks"] == 10 and stats["unjudged"] == 2  # 2 rollouts: rule says unknown
    assert any("fallback" in name for name in stats["judge"])
    assert stats["inconsistent"] == 2


def test_hf_judge_in_process(tiny_kit):
    lm = LocalChatModel.load(tiny_kit)
    judge = HFJudge(JudgeConfig(kind="hf", model=tiny_kit, retries=1, backoff_s=0.0, max_tokens=6,
                                fallback="none"), model=lm.model, tokenizer=lm.tokenizer)
    res = judge.judge_many([ITEM, ITEM])
    assert [r.verdict for r in res] == ["unjudged", "unjudged"] and res[0].judge == f"hf:{tiny_kit}"
    # the reasoning length uses the model's tokenizer when one is given
    from veripo.data.schema import Sample
    from veripo.records import RolloutRecord
    rec = RolloutRecord(rollout_id="r", step=0, group_id="g", prompt="p",
                        sample=Sample(problem_id="1", problem="q", problem_type="numerical", solution="3"),
                        response="<think> hello world </think><answer>3</answer>")
    v = Verifier(VerifierConfig(judge=JudgeConfig(kind="none")), tokenizer=lm.tokenizer).verify([rec])[0]
    assert v.think_tokens == len(lm.tokenizer.encode("hello world", add_special_tokens=False))
    assert v.consistency == "unknown" and v.judge == "none"
