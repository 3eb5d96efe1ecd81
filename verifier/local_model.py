"""A local Hugging Face model as a text chat generator, shared by :class:`~veripo.verifier.judges.HFJudge`
(in-process judge) and ``veripo serve-judge`` (OpenAI-compatible server)."""
from __future__ import annotations

import dataclasses
import threading
from typing import Any


@dataclasses.dataclass
class Generation:
    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: int


def _load(name_or_path: str) -> tuple[Any, Any]:
    try:
        from veripo.models import load_policy
    except ImportError:  # the model loader not installed: plain transformers
        load_policy = None
    if load_policy is not None:
        model, processor = load_policy(name_or_path)
        return model, getattr(processor, "tokenizer", processor)
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    return AutoModelForImageTextToText.from_pretrained(name_or_path), AutoTokenizer.from_pretrained(name_or_path)


class LocalChatModel:
    """Generation is serialised by a lock (one model, CPU or one GPU)."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model = model.eval() if hasattr(model, "eval") else model
        self.tokenizer = tokenizer
        self._lock = threading.Lock()

    @classmethod
    def load(cls, name_or_path: str) -> "LocalChatModel":
        return cls(*_load(name_or_path))

    def prompt_ids(self, messages: list[dict[str, Any]]):
        tok = self.tokenizer
        msgs = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages]
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        else:
            text = "\n".join(f"{m['role']}: {m['content']}" for m in msgs) + "\nassistant: "
        return tok(text, return_tensors="pt", add_special_tokens=False)

    def generate(self, messages: list[dict[str, Any]], max_tokens: int = 64, temperature: float = 0.0,
                 n: int = 1, top_p: float = 1.0, seed: int | None = None) -> Generation:
        import torch

        enc = self.prompt_ids(messages)
        prompt_len = int(enc["input_ids"].shape[1])
        sample = temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": max(1, int(max_tokens)), "do_sample": sample,
                                  "num_return_sequences": n if sample else 1, "pad_token_id": self._pad_id()}
        if sample:
            kwargs.update(temperature=float(temperature), top_p=float(top_p))
        with self._lock, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(**enc, **kwargs)
        eos = self._eos_ids()
        texts, reasons, completion = [], [], 0
        for row in out[:, prompt_len:].tolist():
            cut = next((i for i, t in enumerate(row) if t in eos), None)
            ids = row if cut is None else row[:cut]
            texts.append(self.tokenizer.decode(ids, skip_special_tokens=True))
            reasons.append("stop" if cut is not None else "length")
            completion += len(ids) + (1 if cut is not None else 0)
        if not sample and n > 1:  # greedy: the n choices are identical, decode once
            texts, reasons, completion = texts * n, reasons * n, completion * n
        return Generation(texts, reasons, prompt_len, completion)

    def _eos_ids(self) -> set[int]:
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}

    def _pad_id(self) -> int | None:
        pad = getattr(getattr(self.model, "generation_config", None), "pad_token_id", None)
        if pad is None:
            pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = next(iter(self._eos_ids()), None)
        return pad


def _text(content: Any) -> str:
    """OpenAI content may be a string or a list of parts; keep the text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)
