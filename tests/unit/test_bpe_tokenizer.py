"""The real-size byte-level BPE tokenizers (prime_megatron/data/bpe.py)."""

import unicodedata

import pytest

from prime_megatron.data.bpe import LLAMA3_SPLIT, STYLES, tekken_tokens
from prime_megatron.models.real_shapes import real_config, reduced, transformers_config

MODEL_OF = {"qwen2.5": "qwen2.5-0.5b-instruct", "llama3": "llama-3.2-1b"}

TEXTS = [
    "Let $f(x) = x^2 - 3x + 2$. Then $f(2) = 0$, so the answer is \\boxed{\\frac{1}{2}}.",
    "line one\nline two\r\n\n\tindented  two spaces   three\n",
    "Äpfel, café, naïve, Straße; 数学很有趣; مرحبا; Ελληνικά; 😀👩‍👩‍👧 ∑∫√∞ ≤ ≥",
    "e\u0301 vs \u00e9 (decomposed vs composed), \x00\x07 control bytes, 12345678901234",
    " leading space, <|im_start without its bar, trailing space ",
    "",
]


def expected_text(style: str, text: str) -> str:
    # Qwen2's pipeline (like the real Qwen tokenizer) normalises to NFC; Llama 3's does not.
    return unicodedata.normalize("NFC", text) if STYLES[style].nfc else text


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("text", TEXTS)
def test_any_utf8_text_round_trips(style, text, bpe_tokenizer):
    tok = bpe_tokenizer(style)
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == expected_text(style, text)
    assert all(i < STYLES[style].bpe_tokens for i in ids)  # plain text: no special ids


def test_merges_reproduce_tiktoken_on_the_same_ranks(bpe_tokenizer):
    """The ranks -> merges conversion is exact: Llama 3's pipeline (which takes a piece
    that is a whole token as is, like tiktoken) gives tiktoken's own ids."""
    import tiktoken

    ranks = {token: rank for rank, token in enumerate(tekken_tokens()[:128000])}
    reference = tiktoken.Encoding("tekken-128k", pat_str=LLAMA3_SPLIT, mergeable_ranks=ranks,
                                  special_tokens={})  # fmt: skip
    tok = bpe_tokenizer("llama3")
    for text in TEXTS:
        assert tok.encode(text, add_special_tokens=False) == reference.encode_ordinary(text)


REAL_SPECIAL_IDS = {
    "qwen2.5": {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645},
    "llama3": {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001,
               "<|start_header_id|>": 128006, "<|end_header_id|>": 128007, "<|eot_id|>": 128009},
}  # fmt: skip


@pytest.mark.parametrize("style", STYLES)
def test_special_tokens_have_the_real_ids(style, bpe_tokenizer):
    tok = bpe_tokenizer(style)
    for token, token_id in REAL_SPECIAL_IDS[style].items():
        assert tok.convert_tokens_to_ids(token) == token_id
        assert tok.encode(f"a{token}b", add_special_tokens=False)[1] == token_id
    config = real_config(MODEL_OF[style])
    assert max(tok.get_vocab().values()) < config["vocab_size"]  # rows the embedding has
    if style == "qwen2.5":
        assert (tok.eos_token_id, tok.pad_token_id, tok.bos_token_id) == (151645, 151643, None)
        assert config["eos_token_id"] == tok.eos_token_id
    else:
        assert len(tok) == config["vocab_size"] == 128256  # Llama 3 fills its vocabulary
        assert (tok.bos_token_id, tok.eos_token_id) == (128000, 128009)
        assert config["bos_token_id"] == tok.bos_token_id
        assert tok.encode("hi")[0] == 128000  # encode() prepends BOS, as Llama 3's does


SYSTEM = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "What is 2+2?"}
ANSWER = {"role": "assistant", "content": "\\boxed{4}"}


def render(tok, messages, generation_prompt):
    return tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def test_qwen_chat_template_is_chatml_with_a_default_system_turn(bpe_tokenizer):
    tok = bpe_tokenizer("qwen2.5")
    default_system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    user = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    assert render(tok, [USER], True) == default_system + user + "<|im_start|>assistant\n"
    assert render(tok, [SYSTEM, USER, ANSWER], False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n" + user
        + "<|im_start|>assistant\n\\boxed{4}<|im_end|>\n"
    )  # fmt: skip


def test_llama3_chat_template_uses_role_headers(bpe_tokenizer):
    tok = bpe_tokenizer("llama3")

    def turn(role, text):
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"

    padded_user = {"role": "user", "content": "  What is 2+2?\n"}  # Llama 3 trims content
    assert render(tok, [padded_user], True) == (
        "<|begin_of_text|>" + turn("user", "What is 2+2?")
        + "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )  # fmt: skip
    assert render(tok, [SYSTEM, USER, ANSWER], False) == (
        "<|begin_of_text|>" + turn("system", "Be brief.") + turn("user", "What is 2+2?")
        + turn("assistant", "\\boxed{4}")
    )  # fmt: skip
    ids = tok.encode(render(tok, [USER], True), add_special_tokens=False)
    assert ids.count(tok.bos_token_id) == 1  # the template's, none added by encode


@pytest.mark.parametrize("style", STYLES)
def test_loads_next_to_the_models_config_with_the_same_ids(style, bpe_tokenizer, tmp_path):
    """AutoTokenizer on a model dir: transformers rebuilds a qwen2 dir's pipeline from the
    saved vocabulary and merges, and keeps a llama dir's; either way the ids, specials and
    chat template are the ones built here (vLLM loads through AutoTokenizer too)."""
    from transformers import AutoTokenizer

    built = bpe_tokenizer(style)
    built.save_pretrained(tmp_path)
    transformers_config(reduced(MODEL_OF[style])).save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    rebuilt = "Qwen2Tokenizer" if style == "qwen2.5" else "TokenizersBackend"
    assert type(loaded).__name__ == rebuilt
    for text in [*TEXTS, render(built, [SYSTEM, USER, ANSWER], False)]:
        ids = built.encode(text, add_special_tokens=False)
        assert loaded.encode(text, add_special_tokens=False) == ids
        assert loaded.decode(ids) == built.decode(ids) == expected_text(style, text)
    assert loaded.encode("hi") == built.encode("hi")  # BOS added (Llama 3) or not (Qwen)
    assert render(loaded, [USER], True) == render(built, [USER], True)
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (
        built.bos_token_id, built.eos_token_id, built.pad_token_id,
    )  # fmt: skip
