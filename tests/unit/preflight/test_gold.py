"""Check 3: each gold answer is accepted by the verifier its row is routed to."""

import json

from prime_megatron.data.rows import PromptRow
from prime_megatron.preflight.gold import check_gold_answers
from prime_megatron.preflight.report import FAIL, PASS
from prime_megatron.rewards.config import RewardConfig

TESTS = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})


def _row(gold, ability: str = "math", source: str = "mine") -> PromptRow:
    return PromptRow(({"role": "user", "content": "?"},), source, ability, gold)


def test_math_and_code_gold_answers_that_verify_pass():
    rows = [_row("85"), _row("\\frac{1}{2}"), _row("(1, 2]"), _row(TESTS, "code")]
    result = check_gold_answers(rows, RewardConfig())
    assert result.bad == () and result.check().status == PASS
    assert result.check().summary == "all 4 accepted by their verifier (1 code, 3 math)"


def test_each_kind_of_bad_gold_answer_is_named_with_its_row():
    rows = [
        _row("85"),
        _row("There is exactly 1 such triangle"),  # prose: bad_gold
        _row("85", ability="poetry"),  # no verifier for it
        _row("85", source="apps"),  # routed to code by data_source: not test cases
        _row(json.dumps({"inputs": ["1"], "outputs": []}), "code"),
    ]
    rewards = RewardConfig(verifier_by_data_source={"apps": "code"})
    result = check_gold_answers(rows, rewards)
    check = result.check()
    assert check.status == FAIL and check.summary == "4 of 5 are not accepted by their verifier"
    assert [b.row for b in result.bad] == [2, 3, 4, 5]
    prose, unrouted, routed, broken = (b.problem for b in result.bad)
    assert prose == "gold answer 'There is exactly 1 such triangle' is prose, not a math answer"
    assert unrouted.startswith("no verifier for data_source='mine', ability='poetry'")
    assert routed.startswith("test cases do not parse: code ground_truth")
    assert broken == "test cases do not parse: code ground_truth has 1 inputs, 0 outputs"
    assert check.details[0] == f"row 2: {prose}"


def test_a_gold_answer_that_parses_but_does_not_verify_against_itself_fails(monkeypatch):
    monkeypatch.setattr("prime_megatron.rewards.math_verifier.answers_equivalent",
                        lambda predicted, gold: False)  # fmt: skip
    (bad,) = check_gold_answers([_row("x^2")], RewardConfig()).bad
    assert bad.problem == "\\boxed{x^2} is not equivalent to the gold answer itself"


def test_a_gold_answer_the_boxed_extractor_cannot_read_fails():
    (bad,) = check_gold_answers([_row("\\frac{1}{2")], RewardConfig()).bad  # unbalanced
    assert bad.problem == "\\boxed{\\frac{1}{2} scores 0 (no_answer)"
