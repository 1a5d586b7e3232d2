import itertools
import math
import random

import pytest

from prime_megatron.evidence.stats import (
    at_least,
    at_most,
    auroc,
    average_ranks,
    cumulative,
    diff_ci95,
    even_chunks,
    mean_ci95,
    mean_t_ci95,
    moving_average,
    percentile,
    proportion_ci95,
    ratio,
    round_floats,
    samples_to_reach,
    seed_spread,
)


def test_average_ranks_share_ties():
    assert average_ranks([3, 1, 3, 2]) == [3.5, 1.0, 3.5, 2.0]
    assert average_ranks([5, 5, 5]) == [2.0, 2.0, 2.0]
    assert average_ranks([]) == []


def test_auroc_textbook_example():
    # sklearn's roc_auc_score example: 3 of the 4 positive/negative pairs are ordered.
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)


def test_auroc_counts_ties_as_half():
    # positives {2, 1}, negatives {1, 0}: pairs 2>1, 2>0, 1=1 (1/2), 1>0 -> 3.5 / 4
    assert auroc([2, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert auroc([0.0] * 5, [1, 0, 1, 0, 0]) == pytest.approx(0.5)


def test_auroc_extremes_and_degenerate():
    assert auroc([3, 4, 1, 2], [1, 1, 0, 0]) == 1.0
    assert auroc([1, 2, 3, 4], [1, 1, 0, 0]) == 0.0
    assert auroc([1, 2], [1, 1]) is None
    assert auroc([], []) is None


def test_auroc_matches_pairwise_definition():
    rng = random.Random(0)
    scores = [rng.choice([0.0, 0.5, 1.0, 1.5]) for _ in range(40)]
    labels = [rng.randint(0, 1) for _ in range(40)]
    pos = [s for s, lab in zip(scores, labels, strict=True) if lab]
    neg = [s for s, lab in zip(scores, labels, strict=True) if not lab]
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    assert auroc(scores, labels) == pytest.approx(sum(pairs) / len(pairs))


def test_confidence_intervals():
    assert proportion_ci95(0.5, 100) == pytest.approx(0.098)  # 1.96 * sqrt(0.25 / 100)
    assert proportion_ci95(0.0, 10) == 0.0
    assert proportion_ci95(0.5, 0) is None
    assert mean_ci95([1.0, 2.0, 3.0]) == pytest.approx(1.96 / math.sqrt(3))  # stdev 1
    assert mean_ci95([1.0]) is None


def test_t_interval_for_few_seeds():
    # 3 seeds: t(0.975, df 2) = 4.303 (the tables'), stdev 1
    assert mean_t_ci95([1.0, 2.0, 3.0]) == pytest.approx(4.303 / math.sqrt(3))
    assert mean_t_ci95([0.0, 2.0]) == pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2))
    many = [float(i % 2) for i in range(50)]  # past df 30: the df-30 quantile
    assert mean_t_ci95(many) == pytest.approx(2.042 * 0.50508 / math.sqrt(50), rel=1e-4)
    assert mean_t_ci95([1.0]) is None
    assert diff_ci95(3.0, 4.0) == pytest.approx(5.0)
    assert diff_ci95(None, 1.0) is None


def test_cumulative_and_moving_average():
    assert cumulative([1, 2, 3]) == [1, 3, 6]
    assert moving_average([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]
    assert moving_average([1, 2, 3, 4], 1) == [1, 2, 3, 4]
    assert moving_average([1, 2], 3) == []
    with pytest.raises(ValueError):
        moving_average([1], 0)


def test_seed_spread_cuts_to_shortest():
    spread = seed_spread([[1, 2, 3], [3, 4]])
    assert spread == {"mean": [2, 3], "min": [1, 2], "max": [3, 4], "std": [1, 1]}
    assert seed_spread([])["mean"] == []


def test_samples_to_reach_first_crossing():
    acc, spent = [0.1, 0.3, 0.5, 0.4], [10, 20, 30, 40]
    assert samples_to_reach(acc, spent, 0.45) == 30
    assert samples_to_reach(acc, spent, 0.3) == 20  # reaching counts (>=)
    assert samples_to_reach(acc, spent, 0.6) is None


def test_ratio_and_target_checks():
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(None, 4.0) is None and ratio(1.0, 0.0) is None
    assert at_most(0.5, 0.5) is True and at_most(0.6, 0.5) is False and at_most(None, 1) is None
    assert at_least(0.8, 0.8) is True and at_least(0.7, 0.8) is False and at_least(None, 1) is None


def test_even_chunks():
    assert even_chunks([1, 2, 3, 4, 5], 2) == [[1, 2, 3], [4, 5]]
    assert even_chunks([1, 2], 5) == [[1], [2]]
    assert even_chunks([], 3) == []
    assert even_chunks([1, 2, 3], 0) == [[1, 2, 3]]


def test_percentile_nearest_rank():
    values = list(range(1, 21))
    assert percentile(values, 0.025) == 1
    assert percentile(values, 0.5) == 10
    assert percentile(values, 0.975) == 20
    assert percentile([], 0.5) is None


def test_round_floats_walks_containers():
    nested = {"a": [1.23456, (2.0, None)], "b": 3}
    assert round_floats(nested, 2) == {"a": [1.23, [2.0, None]], "b": 3}
    assert round_floats([2e-5, 1.234567e-4, 0.0, 12.345678]) == [2e-5, 1.23e-4, 0.0, 12.3457]
