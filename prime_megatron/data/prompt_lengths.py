"""How long a dataset's prompts are once rendered and tokenized, against rollout.max_prompt_len.

The collector skips a prompt longer than ``rollout.max_prompt_len`` and draws another; if
no prompt fits (say a chat template whose system prompt alone is longer) it would draw
forever without a word. Only the first rows are measured, so the cost stays bounded on
any dataset: ``prepare_inputs`` (trainer/inputs.py) refuses a dataset none of whose
measured prompts fits, and ``tools/preflight.py`` reports the statistics.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .rows import PromptRow


@dataclass(frozen=True)
class PromptLengths:
    """Token counts of the first ``len(lengths)`` rows, in row order."""

    max_prompt_len: int
    lengths: tuple[int, ...]

    @property
    def checked(self) -> int:
        return len(self.lengths)

    @property
    def too_long_rows(self) -> list[int]:
        """1-based positions of the measured rows the collector would skip."""
        return [i + 1 for i, n in enumerate(self.lengths) if n > self.max_prompt_len]

    @property
    def too_long(self) -> int:
        return len(self.too_long_rows)

    @property
    def none_fit(self) -> bool:
        """Every measured prompt is over the limit: training would never get one."""
        return self.checked > 0 and self.too_long == self.checked

    @property
    def shortest(self) -> int:
        return min(self.lengths, default=0)

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)

    @property
    def median(self) -> float:
        return statistics.median(self.lengths) if self.lengths else 0.0

    @property
    def p99(self) -> int:
        """The nearest-rank 99th percentile."""
        if not self.lengths:
            return 0
        return sorted(self.lengths)[math.ceil(0.99 * self.checked) - 1]

    def summary(self) -> str:
        return (
            f"min {self.shortest} / median {self.median:g} / p99 {self.p99} / max "
            f"{self.longest} tokens over {self.checked} rows; {self.too_long} over "
            f"rollout.max_prompt_len={self.max_prompt_len}"
        )


def measure_prompt_lengths(
    rows: Sequence[PromptRow],
    token_ids: Callable[[Sequence[dict]], Sequence[int]],
    max_prompt_len: int,
    limit: int,
) -> PromptLengths:
    """Lengths of the first ``limit`` rows' prompts; ``token_ids`` renders and tokenizes a
    row's messages exactly as the collector does (``PromptEncoder.token_ids``)."""
    lengths = tuple(len(token_ids(row.messages)) for row in rows[:limit])
    return PromptLengths(max_prompt_len, lengths)
