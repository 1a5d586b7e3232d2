"""The arithmetic chain task (shared/notes/tiny-task.md): learnable on 2 CPU cores, with
exact ground-truth step labels.

Prompt ``47+38-19``; solution one step a line, left to right, then the boxed answer::

    47+38=85
    85-19=66
    \\boxed{66}

Each operand is 1-digit (1-9) or, with probability ``p_two_digit``, 2-digit (10-99);
intermediates may go negative. Because the reference chain is unique, the first wrong
line of any response is exact: the ground truth for judging the implicit PRM.
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


@dataclass
class ArithmeticConfig:
    min_ops: int = 2
    max_ops: int = 4
    p_two_digit: float = 0.5  # per operand; 0 -> too easy, 1 -> too hard (tiny-task.md)

    def validate(self) -> None:
        check(self.min_ops >= 1, "synthetic.min_ops", self.min_ops, ">= 1")
        check(self.max_ops >= self.min_ops, "synthetic.max_ops", self.max_ops, ">= min_ops")
        check(0 <= self.p_two_digit <= 1, "synthetic.p_two_digit", self.p_two_digit, "in [0, 1]")


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
        return _partial_results(self)[-1]

    def steps(self) -> list[str]:
        """Reference solution lines: one equation per operation, then ``\\boxed{answer}``."""
        results = _partial_results(self)
        lines = [
            f"{left}{op}{operand}={result}"
            for left, op, operand, result in zip(
                results[:-1], self.ops, self.operands[1:], results[1:], strict=True
            )
        ]
        return [*lines, f"\\boxed{{{results[-1]}}}"]

    @property
    def solution(self) -> str:
        return "\n".join(self.steps())


def _partial_results(problem: Problem) -> list[int]:
    results = [problem.operands[0]]
    for op, operand in zip(problem.ops, problem.operands[1:], strict=True):
        results.append(results[-1] + operand if op == "+" else results[-1] - operand)
    return results


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
    return Problem(operands, tuple(rng.choice("+-") for _ in range(n_ops)))


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


def sft_row(problem: Problem) -> dict:
    """Prompt (chat messages, as in RL rows) plus the worked solution."""
    return {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": "user", "content": problem.prompt}],
        "response": problem.solution,
    }


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
    process rewards should not (tiny-task.md: ~2.6 % after SFT)."""
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
    parser.add_argument("--min-ops", type=int, default=2)
    parser.add_argument("--max-ops", type=int, default=4)
    parser.add_argument("--p-two-digit", type=float, default=0.5)
    args = parser.parse_args(argv)
    cfg = ArithmeticConfig(args.min_ops, args.max_ops, args.p_two_digit)
    cfg.validate()
    train, heldout = make_splits(args.n_sft + args.n_train, args.n_heldout, cfg, args.seed)
    write_jsonl(map(sft_row, train[: args.n_sft]), os.path.join(args.out, "sft.jsonl"))
    for name, problems in [("train", train[args.n_sft :]), ("heldout", heldout)]:
        rows = (rl_row(p, i, name) for i, p in enumerate(problems))
        write_jsonl(rows, os.path.join(args.out, f"{name}.jsonl"))


if __name__ == "__main__":
    main()
