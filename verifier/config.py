"""Typed configuration of the Rollout-Aware Verifier (``veripo verify --show-config``)."""
from __future__ import annotations

import dataclasses

from veripo.config import doc
from veripo.rewards.accuracy import CORRECT_THRESHOLD


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


@dataclasses.dataclass
class RepetitionConfig:
    ngram: int = doc("Word n-gram size for the repetition ratio.", 4)
    max_ngram_ratio: float = doc("Repetitive when the fraction of duplicate n-grams exceeds this.", 0.3)
    max_sentence_repeats: int = doc("Repetitive when one sentence occurs this many times or more.", 3)
    min_ngrams: int = doc("Texts with fewer n-grams than this are never called repetitive by the ratio.", 8)


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
