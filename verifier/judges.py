"""Consistency judges: does the reasoning ``r_i`` support the final answer ``a_i``? (VerIPO Fig. 2
"Consistency Check: r_i + a_i -> LLM"; the paper uses "small LLMs as a judge", spec §2.2.)

* :class:`RuleJudge` — offline, embedded default and fallback. Finds the last conclusion the reasoning
  states ("so the answer is B", "therefore the colour is blue", "thus it is 3.5") and compares it with the
  answer: option letters (option text mapped to its letter) for multiple choice, numbers for numeric and
  regression, normalised text otherwise. No conclusion, or one that cannot be mapped -> ``unknown``.
* :class:`OpenAIJudge` — any OpenAI-compatible chat endpoint through the ``openai`` client (vLLM, or
  ``veripo serve-judge``).
* :class:`HFJudge` — a local Hugging Face model, in-process (``veripo.models.load_policy``).

LLM judges render the versioned prompt (``judge_prompt_v1.txt``), parse the reply with
:func:`parse_verdict` (``render`` / ``parse_reply`` are overridable: ``veripo.eval.answer_judge`` reuses this
client to ask CORRECT / INCORRECT), retry garbage / errors / timeouts with exponential backoff
(``backoff_s * 2**k``), then return ``unjudged`` — never raise, never pass silently. Every result names
the judge that produced it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from veripo.data.schema import Sample
from veripo.errors import ConfigError
from veripo.prompts import question_text
from veripo.redact import redact_text, redact_url
from veripo.rewards import choice_letter, extract_answer, extract_think, infer_problem_type, parse_number
from veripo.verifier.config import JudgeConfig

PROMPT_DIR = Path(__file__).parent


@dataclasses.dataclass
class JudgeInput:
    question: str
    think: str
    answer: str
    options: list[str]
    problem_type: str

    @classmethod
    def from_rollout(cls, response: str, sample: Sample) -> "JudgeInput":
        return cls(question=question_text(sample, reasoning=False), think=extract_think(response) or "",
                   answer=extract_answer(response) or "", options=list(sample.options),
                   problem_type=infer_problem_type(sample))


@dataclasses.dataclass
class JudgeResult:
    verdict: str                     # consistent | inconsistent | unknown | unjudged
    judge: str                       # e.g. "rule", "openai:qwen2.5-7b@http://..", "hf:/path"
    detail: str = ""                 # the reply (truncated) or the last error
    attempts: int = 1
    latency_s: float = 0.0
    fallback: bool = False


# ---------------------------------------------------------------- verdict parsing

_JSON_RE = re.compile(r"\{[^{}]*\}", re.S)


def parse_verdict(text: str | None) -> str | None:
    """``consistent`` / ``inconsistent`` from a judge reply, or ``None`` for garbage.

    Accepts ``{"verdict": "CONSISTENT"}`` (any JSON object with a verdict/label/answer key) or a label word
    anywhere (``NOT CONSISTENT`` counts as inconsistent). A reply naming both labels is garbage.
    """
    if not text:
        return None
    for m in _JSON_RE.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            for key in ("verdict", "label", "answer", "result"):
                value = obj.get(key)
                if isinstance(value, str):
                    label = _label_words(value)
                    if label:
                        return label
    return _label_words(text)


def _label_words(text: str) -> str | None:
    t = text.upper()
    neg = len(re.findall(r"\bINCONSISTENT\b|\bNOT\s+CONSISTENT\b", t))
    pos = len(re.findall(r"(?<!NOT )\bCONSISTENT\b", t))
    if neg and not pos:
        return "inconsistent"
    if pos and not neg:
        return "consistent"
    return None


def load_prompt(path: str | None = None) -> tuple[str, str]:
    """(template, version): version is the file name's ``_vN`` suffix, e.g. ``v1``."""
    p = Path(path) if path else PROMPT_DIR / "judge_prompt_v1.txt"
    template = p.read_text(encoding="utf-8")
    m = re.search(r"_(v\d+)", p.stem)
    return template, (m.group(1) if m else p.stem)


# ---------------------------------------------------------------- rule judge

_END = r"(?=[,;!?\n]|\.(?:\s|$)|$)"
_CONCLUSION_RES = [
    re.compile(r"\b(?:final\s+|correct\s+|right\s+|best\s+)?(?:answer|option|choice)\s*(?:is|should\s+be|would\s+be|"
               r"must\s+be|=|:)\s*(?P<c>[^\n]+?)" + _END, re.I),
    re.compile(r"\b(?:so|therefore|thus|hence)\b,?\s+(?:[\w'-]+\s+){0,5}?(?:is|are|was|were|equals|=)\s+"
               r"(?P<c>[^\n]+?)" + _END, re.I),
    re.compile(r"\b(?:so|therefore|thus|hence)\b,?\s+(?:it'?s\s+)?(?:option\s+)?(?P<c>\(?[A-J]\)?)(?=[\s.,;!?]|$)"),
]


def stated_conclusion(think: str) -> str | None:
    """The last conclusion the reasoning states, e.g. ``"blue"`` from "... so the colour is blue."."""
    best: tuple[int, str] | None = None
    for rx in _CONCLUSION_RES:
        for m in rx.finditer(think or ""):
            if best is None or m.start("c") > best[0]:
                best = (m.start("c"), m.group("c").strip())
    return best[1] if best else None


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9.]+", " ", text.lower()).split())


class RuleJudge:
    name = "rule"

    def judge_one(self, item: JudgeInput) -> JudgeResult:
        t0 = time.perf_counter()
        concl = stated_conclusion(item.think)
        verdict, detail = self._compare(concl, item)
        return JudgeResult(verdict, self.name, detail=detail, attempts=1, latency_s=time.perf_counter() - t0)

    def _compare(self, concl: str | None, item: JudgeInput) -> tuple[str, str]:
        if not item.answer:
            return "unknown", "no final answer"
        if concl is None:
            return "unknown", "the reasoning states no conclusion"
        if item.problem_type == "multiple choice":
            a, c = choice_letter(item.answer, item.options), choice_letter(concl, item.options)
            if a is None or c is None:
                return "unknown", f"cannot map to an option: conclusion {concl!r}, answer {item.answer!r}"
            return ("consistent" if a == c else "inconsistent"), f"reasoning concludes {c}, answer is {a}"
        if item.problem_type in ("numerical", "regression"):
            a, c = parse_number(item.answer), parse_number(concl)
            if a is None or c is None:
                return "unknown", f"no number: conclusion {concl!r}, answer {item.answer!r}"
            same = abs(a - c) <= 1e-6 + 1e-4 * abs(a)
            return ("consistent" if same else "inconsistent"), f"reasoning concludes {c:g}, answer is {a:g}"
        na, nc = _norm(item.answer), _norm(concl)
        if na and (na == nc or re.search(rf"\b{re.escape(na)}\b", nc)):
            return "consistent", f"conclusion {concl!r} states the answer"
        return "unknown", f"cannot compare free text: conclusion {concl!r}, answer {item.answer!r}"

    def judge_many(self, items: list[JudgeInput]) -> list[JudgeResult]:
        return [self.judge_one(it) for it in items]


class NoJudge:
    """``judge.kind: none`` — consistency is not checked (every rollout ``unknown``)."""
    name = "none"

    def judge_many(self, items: list[JudgeInput]) -> list[JudgeResult]:
        return [JudgeResult("unknown", self.name, detail="consistency check disabled", attempts=0) for _ in items]


# ---------------------------------------------------------------- LLM judges

class LLMJudge:
    """Retry/parse/concurrency logic shared by the LLM judges; subclasses implement ``_complete``."""
    name = "llm"

    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.template, self.prompt_version = load_prompt(cfg.prompt_file)
        self._slots = threading.BoundedSemaphore(max(1, cfg.concurrency))
        self._fallback = RuleJudge() if cfg.fallback == "rule" else None
        self._secrets: tuple[str, ...] = ()  # literal secrets (API key, URL password) kept out of every detail

    def render(self, item: JudgeInput) -> str:
        return self.template.format(question=item.question, think=item.think or "(empty)",
                                    answer=item.answer or "(empty)")

    def parse_reply(self, text: str | None) -> str | None:
        """The verdict in a reply, ``None`` for garbage (retried). Subclasses judging another question
        override this together with :meth:`render` (e.g. ``veripo.eval.answer_judge``: correct / incorrect)."""
        return parse_verdict(text)

    def _complete(self, prompt: str, temperature: float) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def judge_one(self, item: JudgeInput) -> JudgeResult:
        prompt = self.render(item)
        t0 = time.perf_counter()
        delay, last = self.cfg.backoff_s, ""
        attempts = self.cfg.retries + 1
        for attempt in range(1, attempts + 1):
            temperature = self.cfg.temperature if attempt == 1 or "unparseable" not in last \
                else max(self.cfg.temperature, 0.7)
            try:
                with self._slots:
                    reply = self._complete(prompt, temperature)
                verdict = self.parse_reply(reply)
                if verdict:
                    return JudgeResult(verdict, self.name, detail=redact_text((reply or "")[:300], self._secrets),
                                       attempts=attempt,
                                       latency_s=time.perf_counter() - t0)
                last = f"unparseable verdict: {(reply or '')[:160]!r}"
            except Exception as e:  # dead endpoint, timeout, HTTP error: retried, then unjudged
                last = f"{type(e).__name__}: {str(e)[:200]}"
            if attempt < attempts:
                time.sleep(delay)
                delay *= 2
        last = redact_text(last, self._secrets)  # an error may quote the URL or the key: never written as is
        result = JudgeResult("unjudged", self.name, detail=f"after {attempts} attempts: {last}",
                             attempts=attempts, latency_s=time.perf_counter() - t0)
        if self._fallback is not None:
            fb = self._fallback.judge_one(item)
            if fb.verdict in ("consistent", "inconsistent"):
                return dataclasses.replace(fb, judge=f"rule (fallback: {self.name} failed)", attempts=attempts,
                                           detail=f"{fb.detail}; {result.detail}", fallback=True,
                                           latency_s=result.latency_s)
        return result

    def judge_many(self, items: list[JudgeInput]) -> list[JudgeResult]:
        if len(items) <= 1:
            return [self.judge_one(it) for it in items]
        with ThreadPoolExecutor(max_workers=max(1, min(self.cfg.concurrency, len(items)))) as pool:
            return list(pool.map(self.judge_one, items))


class OpenAIJudge(LLMJudge):
    def __init__(self, cfg: JudgeConfig, api_key: str | None = None):
        """``api_key``: sent as is; when unset, the ``cfg.api_key_env`` variable (a placeholder if unset too)."""
        super().__init__(cfg)
        if not cfg.url:
            raise ValueError("judge.kind=openai needs judge.url (e.g. http://127.0.0.1:8000/v1)")
        from openai import OpenAI

        key = api_key or os.environ.get(cfg.api_key_env) or "EMPTY"
        self.client = OpenAI(base_url=cfg.url, api_key=key, timeout=cfg.timeout_s, max_retries=0)
        password = urlsplit(cfg.url).password
        self._secrets = tuple(s for s in (key if key != "EMPTY" else None, password) if s)
        self.name = f"openai:{cfg.model}@{redact_url(cfg.url)}"  # written into verdicts, pairs and stats

    def _complete(self, prompt: str, temperature: float) -> str:
        resp = self.client.chat.completions.create(
            model=self.cfg.model, messages=[{"role": "user", "content": prompt}],
            temperature=temperature, max_tokens=self.cfg.max_tokens)
        return resp.choices[0].message.content or ""


class HFJudge(LLMJudge):
    """In-process Hugging Face judge (text-only generation with the model's chat template)."""

    def __init__(self, cfg: JudgeConfig, model: Any = None, tokenizer: Any = None):
        super().__init__(cfg)
        from veripo.verifier.local_model import LocalChatModel

        self.lm = LocalChatModel.load(cfg.model) if model is None else LocalChatModel(model, tokenizer)
        self.name = f"hf:{cfg.model}"

    def _complete(self, prompt: str, temperature: float) -> str:
        out = self.lm.generate([{"role": "user", "content": prompt}], max_tokens=self.cfg.max_tokens,
                               temperature=temperature, n=1)
        return out.texts[0]


# judge.kind -> how to build it from the judge config; a new judge is a class above plus one entry here
JUDGES: dict[str, Any] = {
    "rule": lambda cfg: RuleJudge(),
    "openai": OpenAIJudge,
    "hf": HFJudge,
    "none": lambda cfg: NoJudge(),
}


def build_judge(cfg: JudgeConfig):
    if cfg.kind not in JUDGES:
        raise ConfigError(f"judge.kind {cfg.kind!r} is not one of {', '.join(JUDGES)}")
    return JUDGES[cfg.kind](cfg)
