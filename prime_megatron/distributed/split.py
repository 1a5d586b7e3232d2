"""Balanced contiguous splits: DP ranks' samples, rollout replicas' prompts, evidence bins."""

from __future__ import annotations


def split_even(n: int, parts: int) -> list[slice]:
    """``parts`` contiguous slices covering range(n), sizes differing by at most one (the
    first ``n % parts`` one longer; trailing slices are empty when ``parts > n``)."""
    base, extra = divmod(n, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + base + (i < extra))
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
