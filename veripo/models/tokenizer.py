"""A byte-level BPE tokenizer trained locally, a twin of Qwen2.5-VL's (offline tiny-model kit).

Nothing is downloaded: the vocabulary is learned in well under a second from a built-in corpus of generic
reasoning / video-QA lines (colours, directions, numbers, option letters, think/answer patterns), plus any
lines the caller passes (the demo passes its synthetic task texts, so its prompts tokenize compactly).

What it shares with the real checkpoint (``veripo.models.qwen25vl``; checked by tests/test_models_twin.py):

* Qwen2's pre-tokenizer (its split regex, then byte-level) and NFC normalisation, so ``<think>``, ``</think>``,
  ``<answer>``, ``</answer>`` are ORDINARY text of several BPE pieces (``</answer>`` -> ``</`` ``answer`` ``>``),
  and a piece may straddle a tag (``</think><answer>`` -> ``</`` ``think`` ``><`` ``answer`` ``>``): stopping at
  ``</answer>`` needs a string stop criterion, and tags are found in decoded text, never in token ids;
* the 22 added tokens of Qwen2.5-VL in its order and roles: ``<|endoftext|>`` (pad), ``<|im_start|>``,
  ``<|im_end|>`` (eos), ... ``<|vision_start|>`` ... ``<|video_pad|>`` special (dropped by
  ``decode(skip_special_tokens=True)``), ``<tool_call>`` ... ``<|file_sep|>`` not special. Compact form
  (default): ids 0..21, BPE pieces after them. ``real_ids=True``: the checkpoint's ids 151643..151664, BPE
  pieces from 0, the gap filled with unreachable ``<|veripo_unused_N|>`` entries (``len(tokenizer)`` = 151665);
* Qwen2.5-VL's chat template, verbatim (default system turn, vision placeholders, ``add_vision_id``);
* left padding, so batched generation appends right after each prompt (the real tokenizer pads right;
  ``load_processor`` sets left for every checkpoint).
"""
from __future__ import annotations

from typing import Iterable

from veripo.models import qwen25vl as Q

SPECIAL_TOKENS: tuple[str, ...] = tuple(t for t, _ in Q.ADDED_TOKENS)  # all added tokens, in the checkpoint's order
REASONING_TAGS: tuple[str, ...] = ("<think>", "</think>", "<answer>", "</answer>")
VISION_TOKENS: tuple[str, ...] = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
CHAT_TEMPLATE = Q.CHAT_TEMPLATE
# Qwen2's pre-tokenizer split (tokenizer.json "pre_tokenizer": Split(this regex, isolated) then ByteLevel).
QWEN2_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                     r"|\s*[\r\n]+|\s+(?!\S)|\s+")
UNUSED_TOKEN = "<|veripo_unused_{}|>"

_COLOURS = ("red", "green", "blue", "yellow", "white", "black", "orange", "purple", "pink", "grey", "brown", "cyan")
_DIRECTIONS = ("left", "right", "up", "down", "left to right", "right to left", "top to bottom", "bottom to top",
               "clockwise", "counterclockwise")
_OBJECTS = ("square", "circle", "ball", "box", "person", "car", "dog", "cat", "cup", "door", "bird", "chair")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_LETTERS = "ABCDEFGHIJ"


def response_end_id(tokenizer) -> int:
    """The token that ends an assistant turn: ``<|im_end|>`` (Qwen's chat template), else the tokenizer's EOS."""
    tid = tokenizer.convert_tokens_to_ids(Q.EOS_TOKEN)
    return tid if tid is not None and tid != tokenizer.unk_token_id else tokenizer.eos_token_id


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


def train_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 512, include_default: bool = True,
                    real_ids: bool = False):
    """Train a byte-level BPE tokenizer on ``default_corpus()`` + ``corpus``; returns a PreTrainedTokenizerFast.

    ``vocab_size`` is the BPE target including the 22 added tokens; a small corpus may give fewer merges.
    ``real_ids``: the added tokens at the checkpoint's ids (see the module doc). Deterministic for a corpus.
    """
    import json

    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    lines = (default_corpus() if include_default else []) + [str(x) for x in (corpus or [])]
    if not lines:
        raise ValueError("train_tokenizer: empty corpus")
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(lines, trainer)
    bpe.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, sp in Q.ADDED_TOKENS if sp])
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t, sp in Q.ADDED_TOKENS if not sp])
    if real_ids:
        bpe = Tokenizer.from_str(json.dumps(_at_real_ids(json.loads(bpe.to_str()))))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=None,
        eos_token=Q.EOS_TOKEN,
        pad_token=Q.PAD_TOKEN,
        padding_side="left",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"},
        chat_template=CHAT_TEMPLATE,
        model_max_length=Q.MODEL_MAX_LENGTH,
    )


def _at_real_ids(state: dict) -> dict:
    """Move a compact tokenizer's added tokens (ids 0..21) to 151643..151664 and its BPE pieces to 0..N-23,
    filling the ids in between with unreachable placeholders (no merge produces them). Merges are unchanged."""
    n_added = len(Q.ADDED_TOKENS)
    vocab = state["model"]["vocab"]
    remapped = {tok: (Q.FIRST_ADDED_ID + i if i < n_added else i - n_added) for tok, i in vocab.items()}
    for i in range(len(vocab) - n_added, Q.FIRST_ADDED_ID):
        remapped[UNUSED_TOKEN.format(i)] = i
    state["model"]["vocab"] = remapped
    for added in state["added_tokens"]:
        added["id"] = remapped[added["content"]]
    return state
