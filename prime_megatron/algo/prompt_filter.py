"""Online prompt filter and the carry-over buffer that keeps every step's batch full.

docs/design.md 2.3: keep a prompt only if the mean outcome of its K samples lies in [low, high];
optionally drop prompts with a truncated sample. Whole groups are kept or dropped, so the
leave-one-out baseline always sees all K samples of a prompt.
"""

import copy
import math
from typing import Any

import torch
from torch import Tensor

from prime_megatron.algo.ops import Groups

# Bounds are inclusive, but float32 outcomes drift past them in float64 (float32(0.2) is
# 0.2000000030), so a group exactly at a bound compares with this much slack.
BOUND_TOLERANCE = 1e-6


def filter_groups(
    outcome: Tensor,
    group: Tensor,
    truncated: Tensor | None = None,
    accuracy_range: tuple[float, float] | None = (0.2, 0.8),
    drop_truncated: bool = False,
) -> tuple[Tensor, dict[str, int]]:
    """Which samples survive the filter, decided per group.

    Args:
        outcome: [B] outcome rewards r_o in [0, 1]. group: [B] prompt id per sample.
        truncated: [B] bool, sample hit the response length limit (needed if drop_truncated).
        accuracy_range: inclusive [low, high] for the group's mean outcome (within
            ``BOUND_TOLERANCE``); None keeps all.
        drop_truncated: drop the whole group if any of its samples was truncated (official).
    Returns:
        ([B] bool keep mask, counts: groups, kept, too_easy, too_hard, truncated groups).
    """
    groups = Groups.of(group)
    accuracy = groups.sum(outcome.double()) / groups.size
    keep = torch.ones_like(groups.size, dtype=torch.bool)
    counts = {"groups": len(groups.size)}
    if accuracy_range is not None:
        low, high = accuracy_range
        too_hard = accuracy < low - BOUND_TOLERANCE
        too_easy = accuracy > high + BOUND_TOLERANCE
        counts["too_hard"] = int(too_hard.sum())
        counts["too_easy"] = int(too_easy.sum())
        keep &= ~too_hard & ~too_easy
    if drop_truncated:
        if truncated is None:
            raise ValueError("drop_truncated=True needs the per-sample truncated flags")
        has_truncated = groups.sum(truncated.long()) > 0
        counts["truncated"] = int(has_truncated.sum())
        keep &= ~has_truncated
    counts["kept"] = int(keep.sum())
    return keep[groups.index], counts


class CarryOverBuffer:
    """FIFO of prompt groups that passed the filter, waiting to be trained on.

    A step oversamples prompts, adds the surviving groups, and takes exactly the batch it
    needs; the surplus carries over to later steps instead of being thrown away. A group
    generated at step s may be taken until step s + ``max_age`` (its samples come from an
    older policy; 0 = never carry over, the official behaviour of dropping the surplus).
    Items are opaque to the buffer; keep them plain python data (lists, dicts, numbers,
    strings) so ``state_dict`` can go into a checkpoint as is.
    """

    def __init__(self, max_age: int = 1):
        if max_age < 0:
            raise ValueError(f"max_age={max_age} is invalid: must be >= 0")
        self.max_age = max_age
        self._entries: list[tuple[int, Any]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, items: list[Any], step: int) -> None:
        """Append groups produced at ``step`` (oldest are taken first)."""
        self._entries.extend((step, item) for item in items)

    def _drop_stale(self, step: int) -> int:
        fresh = [(born, item) for born, item in self._entries if step - born <= self.max_age]
        dropped, self._entries = len(self._entries) - len(fresh), fresh
        return dropped

    def take(self, n: int, step: int) -> list[Any] | None:
        """The ``n`` oldest still-fresh groups, or None (buffer kept) if fewer are available."""
        self._drop_stale(step)
        if len(self._entries) < n:
            return None
        taken, self._entries = self._entries[:n], self._entries[n:]
        return [item for _, item in taken]

    def prompts_to_generate(self, n: int, step: int, oversample_factor: float) -> int:
        """How many prompts to roll out at ``step`` to expect ``n`` usable groups."""
        self._drop_stale(step)
        return math.ceil(max(0, n - len(self._entries)) * oversample_factor)

    def state_dict(self) -> dict[str, Any]:
        """Plain python copy of the buffer, for checkpoints."""
        entries = [[born, copy.deepcopy(item)] for born, item in self._entries]
        return {"max_age": self.max_age, "entries": entries}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from ``state_dict`` output; fails naming the missing key if malformed."""
        for key in ("max_age", "entries"):
            if key not in state:
                raise ValueError(f"carry-over buffer state is missing {key!r}: got {list(state)}")
        self.max_age = int(state["max_age"])
        self._entries = [(int(born), copy.deepcopy(item)) for born, item in state["entries"]]
