"""A byte-level BPE tokenizer trained locally, shaped like Qwen2.5-VL's (offline tiny-model kit).

Nothing is downloaded: the vocabulary is learned in well under a second from a built-in corpus of generic
reasoning / video-QA lines (colours, directions, numbers, option letters, think/answer patterns), plus any
lines the caller passes (the demo passes its synthetic task texts, so its prompts tokenize compactly).

Layout (matches what Qwen2_5_VLProcessor and the trainers expect):

* special tokens ``<|endoftext|>`` (pad, bos), ``<|im_start|>``, ``<|im_end|>`` (eos), ``<|vision_start|>``,
  ``<|vision_end|>``, ``<|vision_pad|>``, ``<|image_pad|>``, ``<|video_pad|>`` — ids 0..7 in this order;
* ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` are *non-special* added tokens: one id each, and
  ``decode(skip_special_tokens=True)`` keeps them, so reward parsing sees them (cpu-stack.md pitfall 11);
* a Qwen-style chat template (default system turn, ``<|vision_start|><|video_pad|><|vision_end|>``
  placeholders for ``{"type": "video"}`` content items, generation prompt ``<|im_start|>assistant\\n``);
* left padding, so batched generation appends right after each prompt.
"""
from __future__ import annotations

from typing import Iterable

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
REASONING_TAGS: tuple[str, ...] = ("<think>", "</think>", "<answer>", "</answer>")
VISION_TOKENS: tuple[str, ...] = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Qwen2-VL style: a default system turn when none is given; image/video content items become vision placeholders.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_COLOURS = ("red", "green", "blue", "yellow", "white", "black", "orange", "purple", "pink", "grey", "brown", "cyan")
_DIRECTIONS = ("left", "right", "up", "down", "left to right", "right to left", "top to bottom", "bottom to top",
               "clockwise", "counterclockwise")
_OBJECTS = ("square", "circle", "ball", "box", "person", "car", "dog", "cat", "cup", "door", "bird", "chair")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_LETTERS = "ABCDEFGHIJ"


def default_corpus() -> list[str]:
    """A few hundred generic reasoning / video-QA lines; deterministic (no randomness)."""
    lines: list[str] = []
    for i, colour in enumerate(_COLOURS):
        obj = _OBJECTS[i % len(_OBJECTS)]
        other = _COLOURS[(i + 3) % len(_COLOURS)]
        lines += [
            f"What colour is the {obj} in the video?",
            f"The {obj} is {colour} in every frame, so the colour is {colour}.",
            f"A {colour} {obj} appears on a {other} background.",
            f"<think>The {obj} looks {colour} in the first frame and stays {colour}.</think><answer>{_LETTERS[i % 4]}</answer>",
        ]
    for i, direction in enumerate(_DIRECTIONS):
        obj = _OBJECTS[(i + 5) % len(_OBJECTS)]
        lines += [
            f"Which way does the {obj} move?",
            f"The {obj} moves {direction} across the frame.",
            f"<think>At the start the {obj} is on one side, at the end it has moved {direction}.</think>"
            f"<answer>{_LETTERS[(i + 1) % 4]}</answer>",
        ]
    for n in range(0, 21):
        word = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
        lines += [
            f"How many times does the square appear? It appears {n} times.",
            f"<think>I count {word} flashes, so the answer is {n}.</think><answer>{n}</answer>",
            f"The answer is {n}. {n} + 1 = {n + 1}. {n} x 2 = {2 * n}.",
        ]
    for k in range(2, len(_LETTERS) + 1):
        opts = [f"{_LETTERS[j]}. {_COLOURS[j % len(_COLOURS)]}" for j in range(k)]
        lines.append("Options:\n" + "\n".join(opts))
        lines.append(f"<think>Option {_LETTERS[k - 1]} matches what the video shows.</think><answer>{_LETTERS[k - 1]}</answer>")
    for obj in _OBJECTS:
        lines += [
            f"Question: what happens to the {obj} at the end of the video?",
            f"First, the {obj} is visible. Then it moves. Finally, it stops.",
            f"Wait, let me re-check the video. The {obj} is still there in the last frame.",
        ]
    lines += [
        "Think about the question step by step inside <think> </think>, then give the final answer inside <answer> </answer>.",
        "Answer with the option's letter.",
        "Answer with the option's letter from the given choices directly.",
        "The answer must be a number.",
        "Answer with the text.",
        "Answer briefly.",
        "Wait, let me re-check the video.",
        "Let me think step by step. So the answer is",
        "In the beginning, in the middle, at the end of the video.",
        "before after first second third last frame frames time seconds",
        "yes no true false maybe because therefore however",
        "You are a helpful assistant.",
        "0 1 2 3 4 5 6 7 8 9 10 0.5 1.5 2.5 100 %",
        ". , ? ! : ; ( ) [ ] ' \" - + = / *",
    ]
    return lines


def train_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 512, include_default: bool = True):
    """Train a byte-level BPE tokenizer on ``default_corpus()`` + ``corpus``; returns a PreTrainedTokenizerFast.

    ``vocab_size`` is the BPE target including the special tokens; a small corpus may give fewer merges, so
    use ``len(tokenizer)`` for the model's vocabulary. Training is deterministic for a given corpus.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    lines = (default_corpus() if include_default else []) + [str(x) for x in (corpus or [])]
    if not lines:
        raise ValueError("train_tokenizer: empty corpus")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # The tags are added as whole tokens afterwards; strip them from the training text so no merge wastes on them.
    cleaned = [_strip_tags(line) for line in lines]
    bpe.train_from_iterator(cleaned, trainer)
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TAGS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
    )
    return tok


def _strip_tags(line: str) -> str:
    for tag in REASONING_TAGS:
        line = line.replace(tag, " ")
    return line
