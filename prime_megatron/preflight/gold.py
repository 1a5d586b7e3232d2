"""Check 3: every checked row's gold answer is accepted by its own verifier.

Math: the gold answer given as the response, ``\\boxed{gold}``, must score 1 with the math
verifier (a gold answer that is prose or does not parse scores 0 for every sample, so the
row can never teach anything). Code: the test cases must parse. Rows are routed to their
verifier as the reward manager routes them (``RewardConfig.verifier_for``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from prime_megatron.data.rows import PromptRow
from prime_megatron.preflight.report import FAIL, PASS, Check, listed
from prime_megatron.rewards.config import RewardConfig
from prime_megatron.rewards.math_verifier import score_math_with_deadline
from prime_megatron.rewards.testcases import parse_test_suite
from prime_megatron.rewards.verdict import BAD_GOLD, OK

TITLE = "gold answers"
_SHOWN = 60  # characters of a gold answer shown in the report


@dataclass(frozen=True)
class BadGold:
    row: int  # 1-based position among the training rows
    problem: str

    def describe(self) -> str:
        return f"row {self.row}: {self.problem}"


@dataclass(frozen=True)
class GoldAnswers:
    checked: int
    verifiers: Counter = field(default_factory=Counter)  # rows per verifier
    bad: tuple[BadGold, ...] = ()

    def check(self) -> Check:
        routed = ", ".join(f"{n} {kind}" for kind, n in sorted(self.verifiers.items()))
        if not self.bad:
            return Check(TITLE, PASS, f"all {self.checked} accepted by their verifier ({routed})")
        return Check(
            TITLE, FAIL, f"{len(self.bad)} of {self.checked} are not accepted by their verifier",
            listed([b.describe() for b in self.bad]),
        )  # fmt: skip


def check_gold_answers(rows: Sequence[PromptRow], rewards: RewardConfig) -> GoldAnswers:
    verifiers: Counter = Counter()
    bad = []
    for number, row in enumerate(rows, start=1):
        try:
            kind = rewards.verifier_for(row.data_source, row.ability)
        except KeyError as e:
            bad.append(BadGold(number, e.args[0]))
            continue
        verifiers[kind] += 1
        problem = _code_problem(row) if kind == "code" else _math_problem(row, rewards)
        if problem:
            bad.append(BadGold(number, problem))
    return GoldAnswers(len(rows), verifiers, tuple(bad))


def _math_problem(row: PromptRow, rewards: RewardConfig) -> str | None:
    gold = str(row.ground_truth)
    # The boxed extractor alone: the question is whether the gold verifies, not whether
    # the configured extractors would find it in a model's answer.
    verdict = score_math_with_deadline(f"\\boxed{{{gold}}}", gold, ("boxed",),
                                       rewards.math_timeout_s)  # fmt: skip
    if verdict.score == 1.0:
        return None
    if verdict.status == BAD_GOLD:  # the detail names the gold answer and what is wrong
        return verdict.detail
    boxed = f"\\boxed{{{gold[:_SHOWN]}}}"
    if verdict.status == OK:
        return f"{boxed} is not equivalent to the gold answer itself"
    why = f": {verdict.detail}" if verdict.detail else ""
    return f"{boxed} scores 0 ({verdict.status}{why})"


def _code_problem(row: PromptRow) -> str | None:
    try:
        parse_test_suite(row.ground_truth)
    except ValueError as e:
        return f"test cases do not parse: {e}"
    return None
