"""The Eurus-2-RL-Data-style parquet of tests/real_shape_inputs.py, read the way a run reads
its data: loaded and checked, rendered with the real-size tokenizers, golds verifiable."""

import pytest

from prime_megatron.data.bpe import STYLES
from prime_megatron.data.dataset import PromptDataset
from prime_megatron.data.template import PromptRenderer
from prime_megatron.rewards.math_verifier import check_gold, score_math
from prime_megatron.rewards.verdict import OK
from prime_megatron.trainer.collect import PromptEncoder
from tests.real_shape_inputs import MATH_PROBLEMS, SYSTEM_PROMPT


def test_rows_load_as_prime_rows(eurus_parquet):
    dataset = PromptDataset.load([str(eurus_parquet)])
    assert len(dataset) == len(MATH_PROBLEMS) and not dataset.skipped
    for row, (question, gold) in zip(dataset, MATH_PROBLEMS, strict=True):
        assert [m["role"] for m in row.messages] == ["system", "user"]
        assert row.messages[0]["content"] == SYSTEM_PROMPT
        assert row.messages[1]["content"] == question
        assert (row.ability, row.ground_truth, row.style) == ("math", gold, "rule")


@pytest.mark.parametrize("question, gold", MATH_PROBLEMS)
def test_golds_are_verifiable(question, gold):
    check_gold(gold)
    right = score_math(f"Step by step ... so the answer is \\boxed{{{gold}}}.", gold)
    assert (right.score, right.status) == (1.0, OK)
    assert score_math("\\boxed{999}", gold).score == 0.0


@pytest.mark.parametrize("style", STYLES)
def test_prompts_render_and_tokenize_losslessly(style, eurus_parquet, bpe_tokenizer):
    tok = bpe_tokenizer(style)
    render = PromptRenderer("chat", tok)
    encode = PromptEncoder(render, tok, max_prompt_len=1024)
    for row in PromptDataset.load([str(eurus_parquet)]):
        ids = encode(row.messages)
        assert ids is not None and tok.decode(ids) == render(row.messages)
        assert row.messages[1]["content"] in tok.decode(ids)
