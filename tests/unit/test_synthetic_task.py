import json
import random
from collections import Counter

import pytest

from prime_megatron.config.errors import ConfigError
from prime_megatron.data.synthetic import (
    DATA_SOURCE,
    ArithmeticConfig,
    Problem,
    boxed_answer_correct,
    carry_steps,
    char_spans_to_token_spans,
    first_wrong_step,
    generate,
    is_carry_step,
    main,
    make_splits,
    parse_prompt,
    right_answer_wrong_step,
    rl_row,
    sample_problem,
    sft_row,
    sft_rows,
    step_char_spans,
    step_labels,
    worked_steps,
)

PROMPT = "47+38-19"
SOLUTION = "47+38=85\n85-19=66\n\\boxed{66}"


def test_worked_example_from_the_notes():
    problem = parse_prompt(PROMPT)
    assert problem == Problem((47, 38, 19), ("+", "-"))
    assert problem.prompt == PROMPT
    assert problem.answer == 66
    assert problem.solution == SOLUTION


def test_negative_intermediates_are_written_as_is():
    problem = parse_prompt("3-47+5")
    assert problem.steps() == ["3-47=-44", "-44+5=-39", "\\boxed{-39}"]


@pytest.mark.parametrize("bad", ["", "47", "-4+3", "4++3", "4+3 ", "4*3", "a+1"])
def test_parse_prompt_rejects_other_text(bad):
    with pytest.raises(ValueError, match="not an arithmetic chain prompt"):
        parse_prompt(bad)


def test_generator_respects_the_config_and_difficulty_mix():
    cfg = ArithmeticConfig(min_ops=2, max_ops=4, p_two_digit=0.5)
    problems = generate(4000, cfg, seed=3)
    assert Counter(len(p.ops) for p in problems).keys() == {2, 3, 4}
    operands = [x for p in problems for x in p.operands]
    assert all(1 <= x <= 99 for x in operands)
    two_digit = sum(x >= 10 for x in operands) / len(operands)
    assert 0.47 < two_digit < 0.53
    assert {op for p in problems for op in p.ops} == {"+", "-"}
    assert all(parse_prompt(p.prompt) == p for p in problems)
    only_small = generate(200, ArithmeticConfig(2, 2, 0.0), seed=3)
    assert all(len(p.ops) == 2 and max(p.operands) <= 9 for p in only_small)


def test_generation_is_deterministic_per_seed():
    cfg = ArithmeticConfig()
    assert generate(50, cfg, seed=7) == generate(50, cfg, seed=7)
    assert generate(50, cfg, seed=7) != generate(50, cfg, seed=8)


def test_heldout_is_unique_and_disjoint_from_train():
    cfg = ArithmeticConfig()
    train, heldout = make_splits(5000, 500, cfg, seed=1)
    held_prompts = [p.prompt for p in heldout]
    assert len(set(held_prompts)) == 500
    assert not set(held_prompts) & {p.prompt for p in train}
    assert (train, heldout) == make_splits(5000, 500, cfg, seed=1)


def test_heldout_larger_than_the_problem_space_fails_clearly():
    tiny = ArithmeticConfig(min_ops=1, max_ops=1, p_two_digit=0.0)  # 9*9*2 = 162 prompts
    with pytest.raises(ValueError, match="distinct prompts"):
        make_splits(10, 500, tiny, seed=1)


def test_addition_only_chains_have_several_carry_steps():
    mixed = generate(2000, ArithmeticConfig(3, 5, 0.5), seed=1)
    added = generate(2000, ArithmeticConfig(3, 5, 0.5, operators="+"), seed=1)
    assert {op for p in added for op in p.ops} == {"+"}
    assert all(parse_prompt(p.prompt) == p for p in added)

    def carries(problem):
        return sum(carry_steps(problem.solution))

    # Without subtraction the running total stays non-negative, so carry steps stay
    # possible: about 1.9 per chain of 3-5 additions against about 1.1 for mixed chains.
    assert sum(map(carries, added)) / 2000 > 1.7
    assert sum(map(carries, mixed)) / 2000 < 1.3


@pytest.mark.parametrize(
    "field,value",
    [
        ("min_ops", 0),
        ("max_ops", 1),
        ("p_two_digit", 1.5),
        ("operators", ""),
        ("operators", "*"),
        ("operators", "++"),
    ],
)
def test_config_validation_names_the_field(field, value):
    cfg = ArithmeticConfig(**{"min_ops": 2, "max_ops": 4, field: value})
    with pytest.raises(ConfigError, match=f"synthetic.{field}"):
        cfg.validate()


def test_rows_use_prime_layout_and_the_math_path():
    problem = parse_prompt(PROMPT)
    row = rl_row(problem, index=5, split="train")
    assert row == {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": "user", "content": PROMPT}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": "66"},
        "extra_info": {"split": "train", "index": 5, "num_ops": 2},
    }
    assert sft_row(problem)["response"] == SOLUTION
    assert sft_row(problem)["prompt"] == row["prompt"]


# (response, first wrong step, labels)
STEP_CASES = [
    (SOLUTION, None, [1, 1, 1]),
    (SOLUTION + "\n", None, [1, 1, 1]),  # a trailing newline is not a step
    ("47+38=86\n86-19=67\n\\boxed{67}", 0, [0, 0, 0]),  # arithmetic slip, then consistent
    ("47+38=85\n85-19=65\n\\boxed{65}", 1, [1, 0, 0]),
    ("47+38=85\n85-19=66\n\\boxed{65}", 2, [1, 1, 0]),
    ("47+38=85\n85+19=66\n\\boxed{66}", 1, [1, 0, 0]),  # copy error, right answer
    ("47+38=85\n85-19=66", 2, [1, 1]),  # stopped early: the missing step is wrong
    (SOLUTION + "\n1+1=2", 3, [1, 1, 1, 0]),  # extra line after the answer
    ("", 0, [0]),
    ("47 + 38 = 85\n85-19=66\n\\boxed{66}", 0, [0, 0, 0]),  # format differs
]


@pytest.mark.parametrize("response,wrong,labels", STEP_CASES)
def test_first_wrong_step_and_labels(response, wrong, labels):
    assert first_wrong_step(PROMPT, response) == wrong
    assert step_labels(PROMPT, response) == labels


def test_right_answer_through_a_wrong_step_is_detected():
    lucky = "47+38=85\n85+19=66\n\\boxed{66}"
    assert boxed_answer_correct(PROMPT, lucky) and right_answer_wrong_step(PROMPT, lucky)
    assert not right_answer_wrong_step(PROMPT, SOLUTION)
    assert not right_answer_wrong_step(PROMPT, "47+38=86\n86-19=67\n\\boxed{67}")


def test_first_wrong_step_is_exact_on_random_corruptions():
    rng = random.Random(0)
    for problem in generate(300, ArithmeticConfig(), seed=11):
        steps = problem.steps()
        k = rng.randrange(len(steps))
        corrupted = steps[:k] + [steps[k] + "1"] + steps[k + 1 :]
        assert first_wrong_step(problem.prompt, "\n".join(corrupted)) == k
        assert first_wrong_step(problem.prompt, problem.solution) is None


def test_char_spans_partition_the_response_by_line():
    text = SOLUTION + "\n"
    spans = step_char_spans(text)
    assert spans == [(0, 9), (9, 18), (18, len(text))]
    assert "".join(text[a:b] for a, b in spans) == text
    assert [text[a:b].rstrip("\n") for a, b in spans] == SOLUTION.split("\n")


def test_char_spans_map_to_token_spans():
    from prime_megatron.data.tokenizer import build_char_tokenizer

    text = SOLUTION
    offsets = build_char_tokenizer()(text, return_offsets_mapping=True)["offset_mapping"]
    token_spans = char_spans_to_token_spans(step_char_spans(text), offsets)
    assert token_spans == [(0, 9), (9, 18), (18, len(text))]  # one token per char
    # Multi-char tokens: a token belongs to the span holding its first character.
    coarse = [(0, 5), (5, 9), (9, 14), (14, 18), (18, len(text))]
    assert char_spans_to_token_spans(step_char_spans(text), coarse) == [(0, 2), (2, 4), (4, 5)]


def test_cli_writes_three_disjoint_files(tmp_path):
    main(["--out", str(tmp_path), "--n-sft", "30", "--n-train", "20", "--n-heldout", "10",
          "--sft-error-rate", "0"])  # fmt: skip
    names = ("sft", "train", "heldout")
    read = {n: _read_jsonl(tmp_path / f"{n}.jsonl") for n in names}
    assert [len(read[n]) for n in names] == [30, 20, 10]
    held = {r["prompt"][0]["content"] for r in read["heldout"]}
    used = {r["prompt"][0]["content"] for r in read["sft"] + read["train"]}
    assert not held & used
    for row in read["sft"]:
        problem = parse_prompt(row["prompt"][0]["content"])
        assert row["response"] == problem.solution


def test_sample_problem_uses_only_the_given_rng():
    cfg = ArithmeticConfig()
    assert sample_problem(random.Random(5), cfg) == sample_problem(random.Random(5), cfg)


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "left,op,operand,carry",
    [(47, "+", 38, True), (41, "+", 38, False), (7, "+", 8, True), (85, "-", 19, True),
     (85, "-", 14, False), (12, "-", 47, False), (-4, "+", 8, False), (9, "-", 9, False)],
)  # fmt: skip
def test_carry_steps_are_column_carries_and_borrows(left, op, operand, carry):
    assert is_carry_step(left, op, operand) is carry


def test_planted_errors_forget_the_carry_and_propagate():
    problem = parse_prompt("47+38-14-9")
    always = worked_steps(problem, random.Random(0), error_rate=0.999999)
    # 47+38 forgets the carry (75, not 85); 75-14 has no borrow; 61-9 forgets it (62).
    assert always == ["47+38=75", "75-14=61", "61-9=62", "\\boxed{62}"]
    assert first_wrong_step(problem.prompt, "\n".join(always)) == 0
    # -10 and +10 cancel: the right answer through wrong steps (what outcome rewards pay for).
    assert right_answer_wrong_step(problem.prompt, "\n".join(always))
    two_steps = worked_steps(parse_prompt("47+38-14"), random.Random(0), error_rate=0.999999)
    assert two_steps[-1] == "\\boxed{61}"
    assert not boxed_answer_correct("47+38-14", "\n".join(two_steps))
    assert worked_steps(problem) == problem.steps()


def test_planted_error_rate_is_the_share_of_carry_steps():
    cfg = ArithmeticConfig(min_ops=3, max_ops=5, p_two_digit=0.5, sft_error_rate=0.4)
    problems = generate(3000, cfg, seed=1)
    rows = sft_rows(problems, cfg, seed=1)
    carry = wrong = 0
    for row in rows:
        lines = row["response"].split("\n")
        for line, flag in zip(lines, carry_steps(row["response"]), strict=True):
            if flag:
                left, rest = line.split("=")[0], line.split("=")[1]
                carry += 1
                wrong += int(eval(left) != int(rest))  # noqa: S307 - digits and +/- only
    assert carry > 3000
    assert 0.37 < wrong / carry < 0.43
    assert sft_rows(problems, cfg, seed=1) == rows  # seeded
    clean = sft_rows(problems, ArithmeticConfig(sft_error_rate=0.0), seed=1)
    assert [r["response"] for r in clean] == [p.solution for p in problems]


def test_carry_flags_per_response_line():
    assert carry_steps("47+38=85\n85-19=66\n\\boxed{66}") == [True, True, False]
    assert carry_steps("41+38=79\ngarbage") == [False, False]


@pytest.mark.parametrize("field,value", [("sft_error_rate", 1.0), ("sft_error_kind", "sign")])
def test_planted_error_config_is_validated(field, value):
    cfg = ArithmeticConfig(**{field: value})
    with pytest.raises(ConfigError, match=f"synthetic.{field}"):
        cfg.validate()
