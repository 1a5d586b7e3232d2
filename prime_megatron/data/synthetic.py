"""The arithmetic chain task (docs/tiny-task.md): learnable on 2 CPU cores, with exact
ground-truth step labels.

Prompt ``47+38-19``; solution one step a line, left to right, then the boxed answer::

    47+38=85
    85-19=66
    \\boxed{66}

Each operand is 1-digit (1-9) or, with probability ``p_two_digit``, 2-digit (10-99);
intermediates may go negative. Because the reference chain is unique, the first wrong
line of any response is exact: the ground truth for judging the implicit PRM.

Planted errors (``sft_error_rate``): the SFT worked solutions forget the carry (``+``) or
the borrow (``-``) in that share of the *carry steps* and continue from the wrong result,
so the SFT model makes one systematic, confident kind of mistake. RL prompts, outcome
rewards and step labels always use the correct chain. A carry step is a column carry or
borrow on non-negative numbers: ``47+38`` (7+8 >= 10), ``85-19`` (5 < 9); forgetting it
writes 75 and 76.
"""

import argparse
import bisect
import json
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prime_megatron.config.errors import check
from prime_megatron.rewards.extract import boxed

DATA_SOURCE = "synthetic_arith"
_PROMPT = re.compile(r"\d+(?:[+-]\d+)+")


ERROR_KINDS = ("carry",)
OPERATORS = "+-"  # what a chain may use; the prompt and step patterns read the same two
_STEP = re.compile(r"(-?\d+)([+-])(\d+)=(-?\d+)")


@dataclass(frozen=True)
class ArithmeticConfig:
    """The task (the trainer's ``synthetic.*`` section): problem mix, split sizes, and the
    error family planted in the SFT solutions."""

    min_ops: int = 2  # fewest operations in a chain
    max_ops: int = 4  # most operations in a chain
    # Share of 2-digit operands; 0 -> too easy, 1 -> too hard (docs/tiny-task.md).
    p_two_digit: float = 0.5
    # The operations drawn (uniformly) per step. "+" alone keeps the running total
    # non-negative, so about half the steps of 2-digit chains are carry steps: several
    # uncertain decisions per response instead of ~0.9: the default job's task
    # (docs/tiny-task.md).
    operators: str = OPERATORS
    train_prompts: int = 20000  # RL train prompts (the SFT rows are their worked solutions)
    heldout_prompts: int = 1000  # held-out evaluation prompts (never trained on)
    # Share of carry steps whose SFT solution forgets the carry/borrow (0 = clean SFT data).
    # The default testbed (0.5, with p_two_digit 0.5): after 1600 SFT steps held-out greedy
    # pass@1 0.52, sampled 0.48; the SFT model's own confidence finds the first wrong step
    # with AUROC ~0.9 overall but ~0.3-0.5 within carry steps (docs/implicit-prm.md). The
    # clean task (0, p_two_digit 0.3): greedy 0.79, sampled 0.73, confidence AUROC 0.985.
    sft_error_rate: float = 0.5
    sft_error_kind: str = "carry"  # the planted error family (carry: a forgotten carry/borrow)

    def validate(self) -> None:
        check(self.min_ops >= 1, "synthetic.min_ops", self.min_ops, ">= 1")
        check(self.max_ops >= self.min_ops, "synthetic.max_ops", self.max_ops, ">= min_ops")
        check(0 <= self.p_two_digit <= 1, "synthetic.p_two_digit", self.p_two_digit, "in [0, 1]")
        ops = self.operators
        valid = ops != "" and set(ops) <= set(OPERATORS) and len(set(ops)) == len(ops)
        allowed = f"distinct characters from {OPERATORS!r}, at least one"
        check(valid, "synthetic.operators", ops, allowed)
        check(self.train_prompts >= 1, "synthetic.train_prompts", self.train_prompts, ">= 1")
        check(self.heldout_prompts >= 0, "synthetic.heldout_prompts", self.heldout_prompts, ">= 0")
        rate = self.sft_error_rate
        check(0 <= rate < 1, "synthetic.sft_error_rate", rate, "in [0, 1)")
        kind = self.sft_error_kind
        check(kind in ERROR_KINDS, "synthetic.sft_error_kind", kind, f"one of {ERROR_KINDS}")


@dataclass(frozen=True)
class Problem:
    operands: tuple[int, ...]
    ops: tuple[str, ...]  # "+" or "-", one fewer than operands

    @property
    def prompt(self) -> str:
        parts = [str(self.operands[0])]
        for op, operand in zip(self.ops, self.operands[1:], strict=True):
            parts += [op, str(operand)]
        return "".join(parts)

    @property
    def answer(self) -> int:
        signed = (x if op == "+" else -x for op, x in zip(self.ops, self.operands[1:], strict=True))
        return self.operands[0] + sum(signed)

    def steps(self) -> list[str]:
        """Reference solution lines: one equation per operation, then ``\\boxed{answer}``."""
        return worked_steps(self)

    @property
    def solution(self) -> str:
        return "\n".join(self.steps())


def is_carry_step(left: int, op: str, operand: int) -> bool:
    """A column carry (``+``) or borrow (``-``) on non-negative numbers."""
    if left < 0:
        return False
    if op == "+":
        return left % 10 + operand % 10 >= 10
    return left >= operand and left % 10 < operand % 10


def worked_steps(
    problem: Problem, rng: random.Random | None = None, error_rate: float = 0.0
) -> list[str]:
    """Solution lines, each carry step done wrong with probability ``error_rate`` (the
    carry/borrow forgotten: 10 too little or too much); later lines continue from what was
    written, as a student would. ``error_rate`` 0 gives the reference chain."""
    left, lines = problem.operands[0], []
    for op, operand in zip(problem.ops, problem.operands[1:], strict=True):
        result = left + operand if op == "+" else left - operand
        if error_rate and is_carry_step(left, op, operand) and rng.random() < error_rate:
            result += -10 if op == "+" else 10
        lines.append(f"{left}{op}{operand}={result}")
        left = result
    return [*lines, f"\\boxed{{{left}}}"]


def carry_steps(response: str) -> list[bool]:
    """Per response line: is it an equation whose written operation is a carry step."""
    flags = []
    for line in response_lines(response):
        match = _STEP.fullmatch(line)
        flags.append(bool(match) and is_carry_step(int(match[1]), match[2], int(match[3])))
    return flags


def parse_prompt(prompt: str) -> Problem:
    """Inverse of ``Problem.prompt``; ``ValueError`` for anything else."""
    if not _PROMPT.fullmatch(prompt):
        raise ValueError(f"not an arithmetic chain prompt: {prompt!r}")
    numbers = re.findall(r"\d+", prompt)
    return Problem(tuple(map(int, numbers)), tuple(re.findall(r"[+-]", prompt)))


def sample_problem(rng: random.Random, cfg: ArithmeticConfig) -> Problem:
    n_ops = rng.randint(cfg.min_ops, cfg.max_ops)
    operands = tuple(
        rng.randint(10, 99) if rng.random() < cfg.p_two_digit else rng.randint(1, 9)
        for _ in range(n_ops + 1)
    )
    return Problem(operands, tuple(rng.choice(cfg.operators) for _ in range(n_ops)))


def generate(
    n: int, cfg: ArithmeticConfig, seed: int, exclude: frozenset[str] = frozenset()
) -> list[Problem]:
    """``n`` problems from ``seed`` (same seed, same list), none with a prompt in ``exclude``."""
    rng = random.Random(f"arith/{seed}")
    problems = []
    while len(problems) < n:
        problem = sample_problem(rng, cfg)
        if problem.prompt not in exclude:
            problems.append(problem)
    return problems


def make_splits(
    n_train: int, n_heldout: int, cfg: ArithmeticConfig, seed: int
) -> tuple[list[Problem], list[Problem]]:
    """Train and held-out problems from independent streams; held-out prompts are unique
    and never appear in train."""
    rng = random.Random(f"arith-heldout/{seed}")
    heldout: dict[str, Problem] = {}
    for _ in range(100 * n_heldout + 1000):  # bounded: small configs have few prompts
        if len(heldout) == n_heldout:
            break
        problem = sample_problem(rng, cfg)
        heldout.setdefault(problem.prompt, problem)
    if len(heldout) < n_heldout:
        raise ValueError(f"only {len(heldout)} distinct prompts found for {n_heldout} held out")
    train = generate(n_train, cfg, seed, exclude=frozenset(heldout))
    return train, list(heldout.values())


def rl_row(problem: Problem, index: int, split: str) -> dict:
    """A prompt row in PRIME's RL layout, scored by the math verifier."""
    return {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": "user", "content": problem.prompt}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": str(problem.answer)},
        "extra_info": {"split": split, "index": index, "num_ops": len(problem.ops)},
    }


def sft_row(problem: Problem, rng: random.Random | None = None, error_rate: float = 0.0) -> dict:
    """Prompt (chat messages, as in RL rows) plus the worked solution (``worked_steps``)."""
    return {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": "user", "content": problem.prompt}],
        "response": "\n".join(worked_steps(problem, rng, error_rate)),
    }


def sft_rows(problems: Sequence[Problem], cfg: ArithmeticConfig, seed: int) -> list[dict]:
    """The SFT rows of ``problems`` with ``cfg``'s planted errors (seeded)."""
    rng = random.Random(f"arith-sft-errors/{seed}")
    return [sft_row(p, rng, cfg.sft_error_rate) for p in problems]


def response_lines(response: str) -> list[str]:
    """A response's steps: its lines, trailing whitespace/newlines of the whole dropped."""
    return response.rstrip().split("\n")


def first_wrong_step(prompt: str, response: str) -> int | None:
    """Index of the first response line that differs from the reference chain, or None
    if the response is exactly the reference. A response that stops early is wrong at
    the first missing step (index == number of its lines); extra lines are wrong at the
    first one past the boxed answer."""
    reference = parse_prompt(prompt).steps()
    lines = response_lines(response)
    for index, (line, expected) in enumerate(zip(lines, reference, strict=False)):
        if line != expected:
            return index
    return None if len(lines) == len(reference) else min(len(lines), len(reference))


def first_wrong_char(prompt: str, response: str) -> int | None:
    """Index of the first character of ``response`` that leaves the reference solution, or
    None where ``first_wrong_step`` is None. A response that stops early gets
    ``len(response)``: the token that ended it (EOS) is the wrong one."""
    if first_wrong_step(prompt, response) is None:
        return None
    reference = parse_prompt(prompt).solution
    for index, (got, expected) in enumerate(zip(response, reference, strict=False)):
        if got != expected:
            return index
    return min(len(response), len(reference))


def step_labels(prompt: str, response: str) -> list[int]:
    """Per response line: 1 before the first wrong step, 0 from it on (PRM800K-style)."""
    wrong = first_wrong_step(prompt, response)
    n = len(response_lines(response))
    return [1 if wrong is None or i < wrong else 0 for i in range(n)]


def boxed_answer_correct(prompt: str, response: str) -> bool:
    """What the outcome reward pays for: the last ``\\boxed{}`` holds the answer."""
    return boxed(response) == str(parse_prompt(prompt).answer)


def right_answer_wrong_step(prompt: str, response: str) -> bool:
    """Correct boxed answer reached through a wrong line: outcome rewards pay for it,
    process rewards should not (docs/tiny-task.md, the trial on the clean task: ~2.6 % after
    SFT)."""
    return boxed_answer_correct(prompt, response) and first_wrong_step(prompt, response) is not None


def step_char_spans(response: str) -> list[tuple[int, int]]:
    """``[start, end)`` character span of each step (as ``response_lines``). Spans
    partition the text: a line's newline belongs to it, the last span runs to the end."""
    spans, start = [], 0
    lines = response_lines(response)
    for i, line in enumerate(lines):
        end = len(response) if i == len(lines) - 1 else start + len(line) + 1
        spans.append((start, end))
        start = end
    return spans


def char_spans_to_token_spans(
    spans: Sequence[tuple[int, int]], offsets: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Token index range ``[first, last)`` of each char span; a token belongs to the span
    holding its first character. ``offsets`` are per-token char offsets into the same
    text (a fast tokenizer's ``return_offsets_mapping``)."""
    starts = [start for start, _ in offsets]
    return [(bisect.bisect_left(starts, a), bisect.bisect_left(starts, b)) for a, b in spans]


def write_jsonl(rows: Iterable[dict], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    """Write sft.jsonl, train.jsonl (RL) and heldout.jsonl (RL) for the tiny task."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--n-sft", type=int, default=64_000)
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-heldout", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    d = ArithmeticConfig()
    parser.add_argument("--min-ops", type=int, default=d.min_ops)
    parser.add_argument("--max-ops", type=int, default=d.max_ops)
    parser.add_argument("--p-two-digit", type=float, default=d.p_two_digit)
    parser.add_argument("--operators", default=d.operators)
    parser.add_argument("--sft-error-rate", type=float, default=d.sft_error_rate)
    args = parser.parse_args(argv)
    cfg = ArithmeticConfig(
        args.min_ops,
        args.max_ops,
        args.p_two_digit,
        operators=args.operators,
        sft_error_rate=args.sft_error_rate,
    )
    cfg.validate()
    train, heldout = make_splits(args.n_sft + args.n_train, args.n_heldout, cfg, args.seed)
    sft = sft_rows(train[: args.n_sft], cfg, args.seed)
    write_jsonl(sft, os.path.join(args.out, "sft.jsonl"))
    for name, problems in [("train", train[args.n_sft :]), ("heldout", heldout)]:
        rows = (rl_row(p, i, name) for i, p in enumerate(problems))
        write_jsonl(rows, os.path.join(args.out, f"{name}.jsonl"))


if __name__ == "__main__":
    main()
