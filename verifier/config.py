"""Typed configuration of the Rollout-Aware Verifier (``veripo verify --show-config``)."""
from __future__ import annotations

import dataclasses

from veripo.config import doc, require, require_file
from veripo.rewards.accuracy import CORRECT_THRESHOLD

JUDGE_KINDS = ("rule", "openai", "hf", "none")
PAIR_KINDS = ("quality", "reflective", "single")


@dataclasses.dataclass
class JudgeConfig:
    kind: str = doc("Consistency judge: rule (embedded, offline), openai (any OpenAI-compatible chat endpoint: "
                    "vLLM, `veripo serve-judge`, ...), hf (a local Hugging Face model, in-process), none.", "rule")
    url: str | None = doc("Base URL of the OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.", None)
    model: str = doc("Model name sent to the endpoint (openai) or path/id of the local model (hf).", "judge")
    api_key_env: str = doc("Environment variable holding the endpoint's API key (a placeholder key is sent "
                           "when it is unset, as vLLM needs none).", "VERIPO_JUDGE_API_KEY")
    timeout_s: float = doc("Seconds before one judge request is abandoned (then retried).", 30.0)
    retries: int = doc("Retries after a failed/garbage/timed-out judge call, with exponential backoff.", 2)
    backoff_s: float = doc("First backoff delay; doubles after every retry.", 0.5)
    concurrency: int = doc("Judge calls in flight at once (per process, shared by all requests).", 8)
    max_tokens: int = doc("Token budget of the judge's reply.", 64)
    temperature: float = doc("Judge sampling temperature for the first attempt (0 = greedy); retries "
                             "of an unparseable reply sample at max(temperature, 0.7).", 0.0)
    prompt_file: str | None = doc("Judge prompt template; default: the packaged judge_prompt_v1.txt. Fields: "
                                  "{question}, {think}, {answer}.", None)
    fallback: str = doc("When the LLM judge fails after all retries: rule (use the rule judge's verdict if it "
                        "reaches one, marked as a fallback) or none (leave it unjudged).", "rule")

    def check(self, prefix: str = "") -> None:
        p = prefix
        require(self.kind in JUDGE_KINDS, f"{p}kind", self.kind, f"must be one of {' | '.join(JUDGE_KINDS)}")
        require(self.kind != "openai" or bool(self.url), f"{p}url", self.url,
                "judge.kind=openai needs the endpoint's base URL, e.g. http://127.0.0.1:8000/v1")
        require(self.fallback in ("rule", "none"), f"{p}fallback", self.fallback, "must be rule | none")
        require(self.timeout_s > 0, f"{p}timeout_s", self.timeout_s, "must be > 0 seconds")
        for key in ("retries", "backoff_s", "temperature"):
            require(getattr(self, key) >= 0, f"{p}{key}", getattr(self, key), "must be >= 0")
        for key in ("concurrency", "max_tokens"):
            require(getattr(self, key) >= 1, f"{p}{key}", getattr(self, key), "must be >= 1")

    def check_inputs(self, prefix: str = "") -> None:
        require_file(self.prompt_file, f"{prefix}prompt_file", "the judge prompt template", required=False)


@dataclasses.dataclass
class RepetitionConfig:
    ngram: int = doc("Word n-gram size for the repetition ratio.", 4)
    max_ngram_ratio: float = doc("Repetitive when the fraction of duplicate n-grams exceeds this.", 0.3)
    max_sentence_repeats: int = doc("Repetitive when one sentence occurs this many times or more.", 3)
    min_ngrams: int = doc("Texts with fewer n-grams than this are never called repetitive by the ratio.", 8)

    def check(self, prefix: str = "") -> None:
        require(self.ngram >= 1, f"{prefix}ngram", self.ngram, "must be >= 1")
        require(0 <= self.max_ngram_ratio <= 1, f"{prefix}max_ngram_ratio", self.max_ngram_ratio, "must be in [0, 1]")
        require(self.max_sentence_repeats >= 2, f"{prefix}max_sentence_repeats", self.max_sentence_repeats,
                "must be >= 2 (every sentence occurs once)")
        require(self.min_ngrams >= 0, f"{prefix}min_ngrams", self.min_ngrams, "must be >= 0")


@dataclasses.dataclass
class PairConfig:
    kinds: list[str] = doc("Pair kinds to build: quality, reflective, single.",
                           default_factory=lambda: ["quality", "reflective", "single"])
    max_quality_per_prompt: int = doc("Quality pairs per group (prompt) at most.", 2)
    max_reflective_per_prompt: int = doc("Reflective pairs per group at most.", 1)
    max_single_per_prompt: int = doc("Single-rollout (repetitive vs cleaned) pairs per group at most.", 1)
    reflection: str = doc("Text joining the failed attempt and the good reasoning in a reflective chosen.",
                          "Wait, let me re-check the video.")
    balance_ratio: float = doc("No problem type keeps more than this times the pairs of the rarest type "
                               "that has pairs (0 = no balancing).", 3.0)
    accept_unknown: bool = doc("A correct rollout whose consistency is 'unknown' (judge could not tell) may be "
                               "chosen. 'unjudged' (judge failed) rollouts are never chosen.", True)
    seed: int = doc("Seed of the balancing subsample.", 0)

    def check(self, prefix: str = "") -> None:
        bad = [k for k in self.kinds if k not in PAIR_KINDS]
        require(bool(self.kinds) and not bad, f"{prefix}kinds", self.kinds,
                f"choose among {', '.join(PAIR_KINDS)}" + (f" ({', '.join(bad)} is not one)" if bad else ""))
        for key in ("max_quality_per_prompt", "max_reflective_per_prompt", "max_single_per_prompt", "balance_ratio"):
            require(getattr(self, key) >= 0, f"{prefix}{key}", getattr(self, key), "must be >= 0")


@dataclasses.dataclass
class VerifierConfig:
    judge: JudgeConfig = doc("Consistency judge.", default_factory=JudgeConfig)
    repetition: RepetitionConfig = doc("Repetition rule.", default_factory=RepetitionConfig)
    pairs: PairConfig = doc("Pair construction.", default_factory=PairConfig)
    tokenizer: str | None = doc("Tokenizer (path or id) for the reasoning length; whitespace words when unset.", None)
    accuracy_reward: str = doc("Accuracy function: 'accuracy' or an import path 'package.module:function'.",
                               "accuracy")
    correct_threshold: float = doc("A rollout is correct when its accuracy is at least this (MC/numeric are "
                                   "0/1; MRA, WER and ROUGE scores are graded; veripo.rewards.is_correct, the rule GRPO uses too).",
                                   CORRECT_THRESHOLD)
    batch_size: int = doc("Rollouts per judge batch / per service request.", 64)
    service_url: str | None = doc("Verify through a running `veripo serve-verifier` at this URL instead of "
                                  "in-process.", None)
    service_token_env: str = doc("Environment variable with the service's bearer token.", "VERIPO_VERIFIER_TOKEN")
    service_timeout_s: float = doc("HTTP timeout of one service request.", 300.0)
    service_concurrency: int = doc("Requests this client keeps in flight at once (its share of a shared service).", 4)
    service_retries: int = doc("Retries of a failed service request (connection refused/reset, timeout, 429, 5xx: "
                               "e.g. while the service restarts), with exponential backoff.", 8)
    service_backoff_s: float = doc("First backoff delay before a retry; doubles each time, at most 30 s.", 0.5)

    def check(self, prefix: str = "") -> None:
        from veripo.config import ConfigError
        from veripo.rewards.registry import resolve_reward

        require(0 < self.correct_threshold <= 1, f"{prefix}correct_threshold", self.correct_threshold,
                "must be in (0, 1]")
        require(self.batch_size >= 1, f"{prefix}batch_size", self.batch_size, "must be >= 1")
        require(self.service_timeout_s > 0, f"{prefix}service_timeout_s", self.service_timeout_s, "must be > 0")
        try:
            resolve_reward(self.accuracy_reward)
        except ConfigError as e:
            raise ConfigError(f"{prefix}accuracy_reward: {e}") from None
