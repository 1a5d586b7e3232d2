import pytest

from prime_megatron.data.tokenizer import build_char_tokenizer
from prime_megatron.evidence.samples import (
    DecodedSample,
    RawsCount,
    decode_sample,
    piece_table,
    pool_counts,
    raws_by_step,
    raws_count,
)

PROMPT = "47+38-19"
RIGHT = "47+38=85\n85-19=66\n\\boxed{66}"
RAWS = "47+38=84\n85-19=66\n\\boxed{66}"  # wrong first line, right answer
WRONG = "47+38=85\n85-19=67\n\\boxed{67}"


def sample(response: str, step: int = 1, q=None) -> DecodedSample:
    return DecodedSample(step, PROMPT, tuple(response), 1.0, q)


def test_piece_table_blanks_special_tokens():
    tok = build_char_tokenizer()
    table = piece_table(tok)
    assert table[: len(tok.all_special_ids)] == ["", "", "", ""]
    assert table[tok.encode("\n")[0]] == "\n"
    assert "".join(table[i] for i in tok.encode(RIGHT, add_special_tokens=False)) == RIGHT


def test_decode_sample_strips_template_and_keeps_token_alignment():
    tok = build_char_tokenizer()
    prompt_ids = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=True)
    prompt_ids = list(getattr(prompt_ids, "input_ids", prompt_ids))
    assert prompt_ids[0] == tok.bos_token_id
    response_ids = tok.encode(WRONG, add_special_tokens=False) + [tok.eos_token_id]
    q = [0.5] * len(response_ids)
    row = {"step": 3, "row_index": 7, "prompt_ids": prompt_ids, "response_ids": response_ids,
           "outcome": 0.0, "q": q}  # fmt: skip
    s = decode_sample(row, piece_table(tok))
    assert (s.step, s.prompt, s.response, s.outcome) == (3, PROMPT, WRONG, 0.0)
    assert len(s.pieces) == len(s.q) == len(WRONG) + 1 and s.pieces[-1] == ""
    assert decode_sample({**row, "q": None}, piece_table(tok)).q is None
    with pytest.raises(ValueError, match="q has"):
        decode_sample({**row, "q": q[:-1]}, piece_table(tok))


def test_raws_count_and_rates():
    counts = raws_count([sample(RIGHT), sample(RAWS), sample(WRONG)])
    assert counts == RawsCount(samples=3, correct=2, raws=1)
    rates = counts.rates()
    assert rates["raws_rate"] == pytest.approx(1 / 3)
    assert rates["raws_among_correct"] == pytest.approx(1 / 2)
    assert RawsCount().rates()["raws_rate"] is None


def test_raws_by_step_and_pooling():
    by_step = raws_by_step([sample(RAWS, 2), sample(RIGHT, 1), sample(RAWS, 2)])
    assert list(by_step) == [1, 2]
    assert by_step[2] == RawsCount(2, 2, 2)
    assert pool_counts(by_step.values()) == RawsCount(3, 3, 2)
