from transformers import AutoTokenizer

from prime_megatron.data.tokenizer import SPECIAL_TOKENS, TASK_ALPHABET, build_char_tokenizer

TASK_TEXT = "47+38-19\n47+38=85\n85-19=66\n\\boxed{66}"


def test_vocab_is_tiny_and_special_ids_are_fixed():
    tok = build_char_tokenizer()
    assert len(tok) == len(SPECIAL_TOKENS) + len(set(TASK_ALPHABET)) <= 30
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)


def test_round_trip_is_exact_and_one_token_per_char():
    tok = build_char_tokenizer()
    for text in [TASK_TEXT, "9-9=0\n", "-5+12=7", " \\boxed{-13} ", "\n\n"]:
        ids = tok.encode(text)
        assert len(ids) == len(text)
        assert tok.decode(ids) == text
        assert tok.unk_token_id not in ids


def test_unknown_characters_map_to_unk():
    tok = build_char_tokenizer()
    assert tok.encode("1a") == [tok.convert_tokens_to_ids("1"), tok.unk_token_id]


def test_save_and_load_with_auto_tokenizer(tmp_path):
    tok = build_char_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.encode(TASK_TEXT) == tok.encode(TASK_TEXT)
    assert loaded.decode(loaded.encode(TASK_TEXT)) == TASK_TEXT
    assert loaded.eos_token == "<eos>" and loaded.pad_token_id == 0


def test_chat_template_places_bos_newline_and_eos(tmp_path):
    build_char_tokenizer().save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    user = {"role": "user", "content": "47+38-19"}
    prompt = tok.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    assert prompt == "<bos>47+38-19\n"
    full = tok.apply_chat_template(
        [user, {"role": "assistant", "content": "47+38=85"}], tokenize=False
    )
    assert full == "<bos>47+38-19\n47+38=85<eos>"
    ids = tok.apply_chat_template([user], add_generation_prompt=True)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.decode(ids[1:]) == "47+38-19\n"


def test_custom_alphabet_deduplicates_and_keeps_order():
    tok = build_char_tokenizer(alphabet="ab*ab")
    assert [tok.convert_tokens_to_ids(c) for c in "ab*"] == [4, 5, 6]
    assert tok.decode(tok.encode("b*a")) == "b*a"


def test_loads_unchanged_next_to_the_models_qwen2_config(tmp_path):
    """transformers picks Qwen2's own (byte-level BPE) pipeline when config.json says qwen2,
    as in every saved model dir; the ids and the text must not change."""
    import json

    from prime_megatron.models.hf_factory import hf_config

    tok = build_char_tokenizer()
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(hf_config(vocab_size=len(tok)).to_dict()))
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == len(tok)
    for text in [TASK_TEXT, "47+38-19\n85", " \\boxed{-13} ", "\n\n"]:
        ids = loaded.encode(text, add_special_tokens=False)
        assert ids == tok.encode(text) and loaded.decode(ids) == text
    assert loaded.apply_chat_template([{"role": "user", "content": "1+2"}], tokenize=False,
                                      add_generation_prompt=True) == "<bos>1+2\n"  # fmt: skip
