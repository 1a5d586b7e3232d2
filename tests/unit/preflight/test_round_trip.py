"""Check 1: the rendered prompt survives encode -> decode, or the report names the row and
where the text changes."""

from tokenizers import normalizers

from prime_megatron.data.rows import normalize_row
from prime_megatron.data.template import PromptRenderer
from prime_megatron.data.tokenizer import TASK_ALPHABET, build_char_tokenizer
from prime_megatron.preflight.report import FAIL, PASS, WARN
from prime_megatron.preflight.round_trip import round_trip
from prime_megatron.trainer.collect import PromptEncoder


def _encoder(prompt_format: str = "chat", template: str = "{prompt}\n") -> PromptEncoder:
    tokenizer = build_char_tokenizer()
    return PromptEncoder(PromptRenderer(prompt_format, tokenizer, template), tokenizer, 64)


def _rows(*questions: str) -> list:
    return [normalize_row({"question": q, "answer": "1"}) for q in questions]


def test_prompts_in_the_vocabulary_round_trip_with_the_chat_templates_special_tokens():
    result = round_trip(_rows("47+38", "12+5-3"), _encoder())
    assert (result.checked, result.mismatches) == (2, ())
    assert result.check().status == PASS
    assert result.check().summary == "all 2 rows round-trip (render -> encode -> decode)"


def test_characters_outside_the_vocabulary_fail_naming_row_and_place():
    # The character tokenizer knows digits and operators only: letters become <unk>.
    result = round_trip(_rows("1+1", "2+2 is", "3+3"), _encoder("plain", "{prompt} =\n"))
    check = result.check()
    assert check.status == FAIL and check.summary == "1 of 3 rows do not round-trip"
    (mismatch,) = result.mismatches
    assert (mismatch.row, mismatch.offset) == (2, 4)
    assert (mismatch.rendered, mismatch.decoded) == ("2+2 is =\n", "2+2 <unk><unk> =\n")
    assert not mismatch.normalised
    assert check.details == ("row 2, character 4: rendered '2+2 is =\\n', "
                             "decoded '2+2 <unk><unk> =\\n'",)  # fmt: skip


def test_a_tokenizer_that_only_normalises_unicode_is_a_warning():
    # As Qwen2's tokenizer: NFC. A decomposed accent comes back composed, the same text.
    encode = _encoder("plain", "{prompt}")
    tokenizer = encode.tokenizer = build_char_tokenizer(TASK_ALPHABET + "\u00e9")
    tokenizer.backend_tokenizer.normalizer = normalizers.NFC()
    encode.renderer.tokenizer = tokenizer
    result = round_trip(_rows("2+2 e\u0301", "2+2"), encode)
    check = result.check()
    assert check.status == WARN and check.summary == "1 of 2 rows do not round-trip"
    assert check.details == ("row 1, character 4 (Unicode normalisation only): rendered "
                             "'2+2 e\\u0301', decoded '2+2 \\xe9'",)  # fmt: skip
