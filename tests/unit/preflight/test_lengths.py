"""Check 2 and the measurement prime-train shares: prompt-length statistics against
rollout.max_prompt_len, over the first rows only."""

import pytest

from prime_megatron.data.prompt_lengths import PromptLengths, measure_prompt_lengths
from prime_megatron.data.rows import normalize_row
from prime_megatron.preflight.lengths import lengths_check
from prime_megatron.preflight.report import FAIL, PASS, WARN


def test_statistics_by_hand():
    lengths = PromptLengths(10, (4, 12, 7, 9, 30))
    assert (lengths.shortest, lengths.median, lengths.p99, lengths.longest) == (4, 9, 30, 30)
    assert (lengths.checked, lengths.too_long, lengths.too_long_rows) == (5, 2, [2, 5])
    assert not lengths.none_fit
    p99 = PromptLengths(10, tuple(range(1, 201)))
    assert (p99.p99, p99.median) == (198, 100.5)  # nearest rank: the 198th of 200
    assert not PromptLengths(10, ()).none_fit  # nothing measured is not "nothing fits"


def test_only_the_first_rows_are_measured():
    rows = [normalize_row({"question": "x" * n, "answer": "1"}) for n in (5, 6, 70)]
    calls = []

    def token_ids(messages):
        calls.append(messages)
        return list(messages[-1]["content"])

    lengths = measure_prompt_lengths(rows, token_ids, 64, limit=2)
    assert lengths.lengths == (5, 6) and len(calls) == 2


@pytest.mark.parametrize(
    "lengths, status",
    [((3, 5), PASS), ((3, 70, 80), WARN), ((65, 70), FAIL)],
)
def test_verdicts(lengths, status):
    check = lengths_check(PromptLengths(64, lengths))
    assert check.status == status
    assert check.summary.endswith("over rollout.max_prompt_len=64")
    if status == WARN:
        assert check.details == (
            "skipped by the collector:",
            "row 2: 70 tokens",
            "row 3: 80 tokens",
        )
    if status == FAIL:
        assert check.details[0].startswith("no checked prompt fits (prime-train refuses to "
                                           "start when none of the first 1000 does)")  # fmt: skip


def test_long_lists_of_rows_are_cut_with_a_count():
    check = lengths_check(PromptLengths(64, (70,) * 7 + (3,)))
    assert check.details[1:] == (*(f"row {r}: 70 tokens" for r in range(1, 6)), "... and 2 more")
