"""The prompt-token limit (``data.max_prompt_tokens``): count a row's prompt in tokens the way the batch
builder (:func:`veripo.prompt_batch.build_prompt_batch`) renders it -- the chat template with the row's vision
placeholder and the question text -- so a row whose prompt would not fit is set aside at load
(:func:`veripo.data.schema.load_samples`, ``file:line: prompt is N tokens, over the M-token limit``) instead of
stopping a step. The video's own tokens are not counted here: they are bounded by the ``video`` settings
(frames x pixels), the same for every row."""
from __future__ import annotations

from typing import Any, Callable

from veripo.prompts import chat_messages
from veripo.video.inputs import render_prompt


def prompt_token_counter(processor: Any, reasoning: bool = True) -> Callable[[Any], int]:
    """``count(sample) -> tokens`` of the rendered prompt with ``processor``'s tokenizer."""
    tokenizer = getattr(processor, "tokenizer", processor)

    def count(sample: Any) -> int:
        text = render_prompt(processor, chat_messages(sample, reasoning=reasoning))
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count
