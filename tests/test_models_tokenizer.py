"""The locally trained tokenizer: Qwen2.5-VL's added tokens, reasoning tags as ordinary BPE text, chat template."""
import pytest

from veripo.models.tokenizer import REASONING_TAGS, SPECIAL_TOKENS, train_tokenizer


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(["The blue circle spins clockwise twice."], vocab_size=400)


def test_added_token_layout(tok):
    assert tok.convert_ids_to_tokens(list(range(len(SPECIAL_TOKENS)))) == list(SPECIAL_TOKENS)
    assert len(SPECIAL_TOKENS) == 22
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.padding_side == "left"
    assert tok.bos_token is None and len(tok) <= 400


def test_reasoning_tags_are_ordinary_text_of_several_pieces(tok):
    """As in the real Qwen tokenizer: no tag is a token, a piece can straddle two tags, decode keeps them."""
    for tag in REASONING_TAGS:
        ids = tok(tag, add_special_tokens=False)["input_ids"]
        assert len(ids) >= 2 and tok.unk_token_id not in ids
        assert all(i >= len(SPECIAL_TOKENS) for i in ids)  # ordinary pieces, not added tokens
        assert tag not in tok.get_vocab()
    pieces = tok.tokenize("</think><answer>")
    assert "><" in pieces  # the boundary piece of Qwen2's pre-tokenizer: '</', 'think', '><', 'answer', '>'
    text = "<think>The square is red.</think><answer>A</answer>"
    ids = tok(text + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == text          # <|im_end|> dropped, tags kept
    assert tok.decode(ids, skip_special_tokens=False).endswith("<|im_end|>")
    assert ids[-1] == tok.convert_tokens_to_ids("<|im_end|>") and ids.count(ids[-1]) == 1


def test_round_trip_of_ordinary_text(tok):
    text = "Wait, let me re-check the video. The blue circle spins clockwise twice! 42 % (x)"
    assert tok.decode(tok(text)["input_ids"]) == text


def test_chat_template_renders_video_placeholder_and_generation_prompt(tok):
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which way?"}]}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "<|vision_start|><|video_pad|><|vision_end|>Which way?<|im_end|>\n<|im_start|>assistant\n")
    with_system = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                                          tokenize=False)
    assert with_system.startswith("<|im_start|>system\nBe brief.<|im_end|>") and "helpful" not in with_system


def test_training_is_deterministic_and_uses_extra_corpus():
    line = "zyxwv zyxwv zyxwv quokka quokka quokka"
    a = train_tokenizer([line] * 50, vocab_size=600)
    b = train_tokenizer([line] * 50, vocab_size=600)
    base = train_tokenizer(None, vocab_size=600)
    assert a.get_vocab() == b.get_vocab()
    assert len(a("quokka")["input_ids"]) < len(base("quokka")["input_ids"])
