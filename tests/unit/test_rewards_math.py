import time

import pytest

from prime_megatron.rewards.extract import extract_answer
from prime_megatron.rewards.math_verifier import (
    SampleTimeout,
    UnusableGold,
    answers_equivalent,
    check_gold,
    deadline,
    score_math,
    score_math_with_deadline,
)
from prime_megatron.rewards.verdict import BAD_GOLD, CRASH, NO_ANSWER, OK, TIMEOUT, Verdict

# (text, extractors, expected answer)
EXTRACTION = [
    ("so \\boxed{42}.", ("boxed",), "42"),
    ("\\boxed{1} then \\boxed{2}", ("boxed",), "2"),  # the last one counts
    ("\\boxed{\\frac{1}{2}}", ("boxed",), "\\frac{1}{2}"),  # nested braces
    ("\\boxed{\\left\\{1, \\{2\\}\\right\\}}", ("boxed",), "\\left\\{1, \\{2\\}\\right\\}"),
    ("$\\boxed {x=2}$", ("boxed",), "x=2"),
    ("\\boxed 5 apples", ("boxed",), "5"),
    ("\\fbox{7}", ("boxed",), "7"),
    ("\\boxed{unclosed", ("boxed",), None),
    ("\\boxed{}", ("boxed",), None),
    ("work...\n#### 1,234", ("boxed", "hash"), "1,234"),
    ("#### 3\n#### 4", ("hash",), "4"),
    ("\\boxed{9}\n#### 4", ("boxed", "hash"), "9"),  # order of extractors decides
    ("\\boxed{9}\n#### 4", ("hash", "boxed"), "4"),
    ("The answer is $\\frac{3}{4}$.", ("boxed", "answer_is"), "\\frac{3}{4}"),
    ("Final answer: 12", ("answer_is",), "12"),
    ("it costs 3 then 4.5 dollars", ("last_number",), "4.5"),
    ("it costs 3 then 4.5 dollars", ("boxed", "hash"), None),  # no fallback configured
    ("no digits here", ("boxed", "hash", "answer_is", "last_number"), None),
]


@pytest.mark.parametrize("text,extractors,expected", EXTRACTION)
def test_answer_extraction(text, extractors, expected):
    assert extract_answer(text, extractors) == expected


EQUIVALENT = [
    ("66", "66"),
    ("-39", "-39"),
    ("+5", "5"),
    ("012", "12"),
    ("\\frac{1}{2}", "0.5"),
    ("\\frac{1}{2}", "1/2"),
    ("\\dfrac{1}{2}", "\\frac12"),
    ("\\frac{7}{2}", "3.5"),
    ("3", "3.0"),
    ("\\frac{1}{3}", "0.3333333"),
    ("(1,2]", "(1, 2]"),
    ("(-\\infty, 3)", "(-\\infty,3)"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("1,2", "2,1"),
    ("5", "5\\text{ cm}"),
    ("5", "5\\,\\mathrm{cm}"),
    ("30", "30^\\circ"),
    ("2", "x=2"),
    ("x=2", "2"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\pi", "3.14159265358979"),
    ("1000", "1,000"),
    ("0.5", "50\\%"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\text{(A)}", "A"),
    # Percent signs and empty-set spellings, on either side.
    ("12.5", "12.5\\%"),
    ("12.5\\%", "12.5"),
    ("12.5", "12.5%"),
    ("25", "25\\%"),
    ("\\varnothing", "\\emptyset"),
    ("\\emptyset", "\\varnothing"),
    # Scientific notation: math-verify alone reads the "e" as Euler's number.
    ("1500", "1.5e3"),
    ("1.5e3", "1500"),
    ("1500", "1.5E+3"),
    ("0.002", "2e-3"),
    ("-\\frac{1}{4}", "-2.5e-1"),
]

NOT_EQUIVALENT = [
    ("66", "67"),
    ("-39", "39"),
    ("\\frac{1}{3}", "0.333"),
    ("(1,2]", "[1,2]"),
    ("(1,2)", "(2,1)"),
    ("\\{1,2\\}", "\\{1,3\\}"),
    ("2", "x=3"),
    ("2\\sqrt{2}", "\\sqrt{6}"),
    ("x^2+1", "(x+1)^2"),
    ("12.5", "13.5\\%"),
    ("\\emptyset", "\\{0\\}"),
    ("1501", "1.5e3"),
    ("3", "3e"),
]


@pytest.mark.parametrize("gold,predicted", EQUIVALENT)
def test_equivalent_answers(gold, predicted):
    assert answers_equivalent(predicted, gold)


@pytest.mark.parametrize("gold,predicted", NOT_EQUIVALENT)
def test_non_equivalent_answers(gold, predicted):
    assert not answers_equivalent(predicted, gold)


def test_score_math_verdicts():
    assert score_math("47+38=85\n\\boxed{85}", "85").score == 1.0
    wrong = score_math("\\boxed{84}", "85")
    assert (wrong.score, wrong.status, wrong.detail) == (0.0, OK, "84")
    missing = score_math("I think it is 85", "85")
    assert (missing.score, missing.status) == (0.0, NO_ANSWER)
    assert score_math("I think it is 85", "85", ("boxed", "last_number")).score == 1.0


def test_scoring_is_deterministic():
    texts = ["\\boxed{\\frac{2}{4}}", "\\boxed{0.5}", "\\boxed{x=1/2}", "\\boxed{0.51}"]
    first = [score_math(t, "\\frac12") for t in texts]
    assert [score_math(t, "\\frac12") for t in reversed(texts)][::-1] == first
    assert [v.score for v in first] == [1.0, 1.0, 1.0, 0.0]


def test_deadline_interrupts_and_is_reported_as_timeout(monkeypatch):
    with pytest.raises(SampleTimeout), deadline(0.05):
        time.sleep(5)
    import prime_megatron.rewards.math_verifier as mv

    monkeypatch.setattr(mv, "answers_equivalent", lambda p, g: time.sleep(5))
    start = time.monotonic()
    verdict = score_math_with_deadline("\\boxed{1}", "1", ("boxed",), 0.1)
    assert (verdict.score, verdict.status) == (0.0, TIMEOUT)
    assert time.monotonic() - start < 2  # interrupted, not slept through


def test_verifier_exception_costs_only_this_sample(monkeypatch):
    import prime_megatron.rewards.math_verifier as mv

    def boom(predicted, gold):
        raise RecursionError("sympy blew up")

    monkeypatch.setattr(mv, "answers_equivalent", boom)
    verdict = score_math_with_deadline("\\boxed{1}", "1", ("boxed",), 1.0)
    assert (verdict.score, verdict.status) == (0.0, CRASH)
    assert "RecursionError" in verdict.detail


# Prose (a data error) and golds math-verify finds nothing in; the second parsed as 1 and
# paid any response boxing 1.
UNUSABLE_GOLD = [
    "3 is the only possible value",
    "There is exactly 1 such triangle",
    "The answer is 1 when n is odd",
    "$3$ is the only possible value",
    "",
]


@pytest.mark.parametrize("gold", UNUSABLE_GOLD)
def test_unusable_gold_scores_zero_as_bad_gold_whatever_the_response(gold):
    for response in ("\\boxed{1}", "\\boxed{3}", "no answer at all"):
        verdict = score_math(response, gold)
        assert (verdict.score, verdict.status) == (0.0, BAD_GOLD), (response, verdict)
        assert repr(gold) in verdict.detail
    with pytest.raises(UnusableGold):
        answers_equivalent("1", gold)


@pytest.mark.parametrize(
    "gold, response",
    [
        ("5\\text{ cm}", "5"),
        ("\\text{Devon and Sam}", "\\text{Devon and Sam}"),
        ("x^2 + 2x", "x(x+2)"),
        ("ab + cd", "ab+cd"),
        ("no solution", "no solution"),
        ("yes", "yes"),
        ("1 and 2", "1, 2"),
    ],
)
def test_golds_with_a_few_letters_are_still_math(gold, response):
    check_gold(gold)
    assert score_math(f"\\boxed{{{response}}}", gold) == Verdict(1.0, OK, response)
