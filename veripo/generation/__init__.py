"""Generating completions from a policy, below the stages that use it: the types (``SamplingParams``,
``Completion``) and Hugging Face sampling (:mod:`veripo.generation.hf`). The GRPO rollout engines, the eval
harness and SFT's greedy held-out check all generate through it."""
