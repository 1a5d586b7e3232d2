"""Small statistics with hand-checkable results: AUROC with ties, normal-approximation
confidence intervals, smoothing, seed spread, samples to reach an accuracy."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from prime_megatron.distributed.split import split_even

Z95 = 1.96  # two-sided 95 % normal quantile
# Two-sided 95 % quantiles of Student's t, by degrees of freedom (1-30; standard tables).
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
       2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
       2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of ``values``; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """P(score of a random positive > score of a random negative), ties counting 1/2
    (the Mann-Whitney U statistic over n_pos x n_neg). None without both classes."""
    n_pos = sum(1 for label in labels if label)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(scores)
    rank_sum = sum(r for r, label in zip(ranks, labels, strict=True) if label)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def proportion_ci95(p: float, n: int) -> float | None:
    """Half-width of the normal-approximation 95 % interval of a proportion ``p`` over
    ``n`` independent trials (the trainer's greedy ``pass@1_ci95`` over n prompts is this
    with n - 1 in the denominator: ``mean_ci95`` of the 0/1 scores)."""
    if n <= 0:
        return None
    return Z95 * math.sqrt(max(p * (1 - p), 0.0) / n)


def mean_ci95(values: Sequence[float]) -> float | None:
    """Half-width of the normal-approximation 95 % interval of the mean of ``values``
    (sample standard deviation); None for fewer than two values."""
    return _mean_half_width(values, Z95)


def mean_t_ci95(values: Sequence[float]) -> float | None:
    """Half-width of the t-based 95 % interval of the mean of ``values`` (few seeds: the
    normal quantile would be too narrow); past 30 degrees of freedom the df-30 quantile,
    slightly wide. None for fewer than two values."""
    df = min(max(len(values) - 1, 1), len(T95))
    return _mean_half_width(values, T95[df - 1])


def _mean_half_width(values: Sequence[float], quantile: float) -> float | None:
    if len(values) < 2:
        return None
    return quantile * statistics.stdev(values) / math.sqrt(len(values))


def diff_ci95(a: float | None, b: float | None) -> float | None:
    """Half-width for the difference of two independent estimates with half-widths a, b."""
    if a is None or b is None:
        return None
    return math.sqrt(a * a + b * b)


def cumulative(values: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing means over full windows only: element i averages values[i : i + window],
    so the result has len(values) - window + 1 elements (none if too short)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return [sum(values[i : i + window]) / window for i in range(len(values) - window + 1)]


def seed_spread(curves: Sequence[Sequence[float]]) -> dict[str, list[float]]:
    """Pointwise mean, min, max and (population) std over seeds, cut to the shortest curve."""
    length = min((len(c) for c in curves), default=0)
    columns = [[c[i] for c in curves] for i in range(length)]
    return {
        "mean": [sum(col) / len(col) for col in columns],
        "min": [min(col) for col in columns],
        "max": [max(col) for col in columns],
        "std": [statistics.pstdev(col) for col in columns],
    }


def samples_to_reach(
    accuracy: Sequence[float], samples: Sequence[float], target: float
) -> float | None:
    """Samples spent when ``accuracy`` first reaches ``target`` (both aligned per step);
    None if it never does."""
    for acc, spent in zip(accuracy, samples, strict=True):
        if acc >= target:
            return spent
    return None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def at_most(value: float | None, limit: float) -> bool | None:
    """Target check ``value <= limit``; None when there is no value."""
    return None if value is None else value <= limit


def at_least(value: float | None, limit: float) -> bool | None:
    """Target check ``value >= limit``; None when there is no value."""
    return None if value is None else value >= limit


def even_chunks(items: Sequence, parts: int) -> list[list]:
    """``parts`` contiguous chunks of ``items`` (sizes differ by at most one; no empties)."""
    return [list(items[s]) for s in split_even(len(items), max(parts, 1)) if s.stop > s.start]


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (the ceil(fraction * n)-th smallest) of sorted values."""
    if not sorted_values:
        return None
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(rank, 1)) - 1]


def round_floats(obj, digits: int = 4):
    """``obj`` with every float rounded to ``digits`` decimals, or to ``digits - 1``
    significant digits if smaller than 1e-3 (learning rates); dicts, lists and tuples are
    walked. For JSON lines."""
    if isinstance(obj, float):
        return round(obj, digits) if abs(obj) >= 1e-3 else float(f"{obj:.{digits - 1}g}")
    if isinstance(obj, dict):
        return {k: round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, digits) for v in obj]
    return obj
