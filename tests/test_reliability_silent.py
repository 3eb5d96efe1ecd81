"""Fault injection, silent trouble: a resume with a changed config, a judge failing every call, and secrets in
the judge URL / API key. Each must be refused, reported, or redacted -- never pass unnoticed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from veripo.config import load_config, save_config
from veripo.redact import redact_text, redact_url
from veripo.train.resume_guard import IGNORED, ConfigMismatch, check_resume_config

PASSWORD, API_KEY = "s3cretPw0rd", "sk-test-abcdefgh12345678"


# ------------------------------------------------------------------------------------------ resume guard
def test_resume_guard_names_changed_keys_ignores_only_result_neutral_fields(tmp_path):
    from veripo.dpo.config import DPOConfig

    cfg = load_config(DPOConfig, None, ["pairs_file=p.jsonl", f"out_dir={tmp_path}"])
    save_config(cfg, tmp_path / "config.yaml")
    assert check_resume_config(tmp_path, cfg) == []
    same_results = load_config(DPOConfig, None, ["pairs_file=p.jsonl", "out_dir=elsewhere", "save_every=7",
                                                 "keep_last=9", "tensorboard=false", "dist.timeout_minutes=5"])
    assert check_resume_config(tmp_path, same_results) == []
    changed = load_config(DPOConfig, None, ["pairs_file=p.jsonl", f"out_dir={tmp_path}", "optim.lr=0.001",
                                            "loss.names=[ipo]"])
    with pytest.raises(ConfigMismatch) as e:
        check_resume_config(tmp_path, changed)
    msg = str(e.value)
    assert "\n" not in msg and "2 changed" in msg and "--force-config" in msg
    assert "optim.lr: 5e-07 -> 0.001" in msg and "loss.names: ['sigmoid'] -> ['ipo']" in msg
    assert check_resume_config(tmp_path, changed, force=True) == ["loss.names", "optim.lr"]
    assert "optim.lr" not in IGNORED and "steps" not in IGNORED and "run.steps" not in IGNORED


@pytest.mark.parametrize("trainer", ["grpo", "dpo"])
def test_trainers_refuse_a_changed_config_on_resume_before_touching_the_run(trainer, tmp_path):
    """The one-line call at the top of each trainer's train(): the saved config.yaml is not overwritten."""
    if trainer == "grpo":
        from veripo.grpo.config import GRPOConfig as C
        from veripo.grpo.trainer import GRPOTrainer as T
        over = [f"run.out_dir={tmp_path}", "data.train_file=t.jsonl"]
    else:
        from veripo.dpo.config import DPOConfig as C
        from veripo.dpo.trainer import DPOTrainer as T
        over = [f"run.out_dir={tmp_path}", "pairs_file=p.jsonl"]
    save_config(load_config(C, None, over), tmp_path / "config.yaml")
    saved = (tmp_path / "config.yaml").read_text()
    t = T.__new__(T)  # no model needed: the check runs first
    t.cfg, t.force_config, t.train_engine = load_config(C, None, over + ["optim.lr=0.5"]), False, None
    t.out = tmp_path  # the stage skeleton's run directory (veripo/train/stage.py)
    with pytest.raises(ConfigMismatch, match="optim.lr"):
        t.train(resume=True)
    assert (tmp_path / "config.yaml").read_text() == saved


def test_force_config_flag_reaches_the_trainer(tmp_path, monkeypatch):
    import argparse
    import types

    from veripo.cli import add_stage_arguments, run_stage
    from veripo.dpo.config import DPOConfig

    seen = {}

    class Stage:
        is_main, bad_inputs = True, []

        def __init__(self, cfg):
            pass

        def train(self, resume):
            seen.update(resume=resume, force=self.force_config)
            return {}

    monkeypatch.setitem(sys.modules, "fake_stage_mod", types.SimpleNamespace(Stage=Stage))
    parser = argparse.ArgumentParser()
    add_stage_arguments(parser, "out_dir")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("")
    args = parser.parse_args(["--resume", "--force-config", f"run.out_dir={tmp_path}", f"pairs_file={pairs}"])
    assert run_stage(args, DPOConfig, "fake_stage_mod:Stage", "pair") == 0
    assert seen == {"resume": True, "force": True}


# ------------------------------------------------------------------------------------------ redaction
def test_redact_url_and_text():
    assert redact_url(f"http://user:{PASSWORD}@127.0.0.1:8000/v1") == "http://user:***@127.0.0.1:8000/v1"
    assert redact_url("https://h/v1?api_key=abc&x=1") == "https://h/v1?api_key=***&x=1"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    text = f"Connection to http://u:{PASSWORD}@h:1/v1 failed; Bearer abc.def; key {API_KEY}; literal k3yv4lue"
    out = redact_text(text, secrets=["k3yv4lue"])
    assert PASSWORD not in out and "abc.def" not in out and API_KEY not in out and "k3yv4lue" not in out
    assert "http://u:***@h:1/v1" in out


class _EchoKey401(BaseHTTPRequestHandler):
    """A judge endpoint that refuses every call and echoes the key it got (as some gateways do)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": {"message": f"bad key {self.headers.get('Authorization')}"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def _files_text(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_secrets_in_judge_url_and_api_key_reach_no_verdict_pair_or_stat(tmp_path, monkeypatch):
    from veripo.verifier.config import VerifierConfig
    from veripo.verifier.examples import write_example_rollouts
    from veripo.verifier.pipeline import run_verification

    server = HTTPServer(("127.0.0.1", 0), _EchoKey401)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("VERIPO_JUDGE_API_KEY", API_KEY)
        cfg = load_config(VerifierConfig, None, [
            "judge.kind=openai", f"judge.url=http://user:{PASSWORD}@127.0.0.1:{server.server_port}/v1",
            "judge.retries=0", "judge.backoff_s=0", "judge.timeout_s=5"])
        path = write_example_rollouts(tmp_path / "rollouts.jsonl")
        stats = run_verification(path, tmp_path / "out", cfg, progress=False)
    finally:
        server.shutdown()
    assert stats["judge_failures"] == {"AuthenticationError": stats["rollouts"]}
    written = _files_text(tmp_path / "out")
    assert "judge" in written and "user:***@127.0.0.1" in written
    assert PASSWORD not in written and API_KEY not in written


def test_verify_cli_prints_a_judge_failure_summary_when_every_call_fails(tmp_path):
    """Fault: the judge endpoint is dead. Before: verify printed nothing about it. Now: a summary by kind."""
    import socket

    from veripo.verifier.examples import write_example_rollouts

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_example_rollouts(tmp_path / "rollouts.jsonl")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "veripo.cli", "verify", "--rollouts", str(path), "--out",
                          str(tmp_path / "out"), "--judge", "openai", "--judge-url",
                          f"http://user:{PASSWORD}@127.0.0.1:{port}/v1", "--no-progress", "judge.retries=0",
                          "judge.backoff_s=0", "judge.timeout_s=2", "judge.fallback=none"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    n = len(path.read_text().splitlines())
    assert f"judge failures: {n} of {n} rollouts (APIConnectionError x{n}); {n} left unjudged" in res.stderr
    assert PASSWORD not in res.stdout + res.stderr + _files_text(tmp_path / "out")


# ------------------------------------------------------------------------------------------ configs on disk
SECRET_URL = f"http://user:{PASSWORD}@127.0.0.1:8000/v1?api_key={API_KEY}"


def test_loop_config_on_disk_has_no_credentials_and_resume_still_matches(tmp_path):
    from veripo.errors import VeripoError
    from veripo.loop.config import LoopConfig
    from veripo.loop.runner import _check_config

    def loop_cfg(url):
        return load_config(LoopConfig, None, [f"run_dir={tmp_path}", "model_path=/m", "train_file=/t.jsonl",
                                              f"verify={json.dumps({'judge': {'kind': 'openai', 'url': url}})}",
                                              f"grpo={json.dumps({'rollout': {'vllm_server_url': url}})}"])

    cfg = loop_cfg(SECRET_URL)
    _check_config(cfg, tmp_path, resume=False)
    text = (tmp_path / "loop_config.yaml").read_text()
    assert PASSWORD not in text and API_KEY not in text
    assert "http://user:***@127.0.0.1:8000/v1?api_key=***" in text  # host, port and path kept
    assert cfg.verify["judge"]["url"] == SECRET_URL  # the run itself still gets the real URL
    _check_config(loop_cfg(SECRET_URL), tmp_path, resume=True)  # the redacted copy is not a "changed" config
    with pytest.raises(VeripoError, match="verify"):
        _check_config(loop_cfg("http://other:8000/v1"), tmp_path, resume=True)  # a real change still counts


def test_stage_config_yaml_has_no_credentials_and_resume_still_matches(tmp_path):
    from veripo.grpo.config import GRPOConfig

    cfg = load_config(GRPOConfig, None, ["model.path=/m", "data.train_file=/t.jsonl",
                                         f"rollout.vllm_server_url={SECRET_URL}"])
    save_config(cfg, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert PASSWORD not in text and API_KEY not in text and "user:***@127.0.0.1:8000" in text
    assert check_resume_config(tmp_path, cfg) == []
