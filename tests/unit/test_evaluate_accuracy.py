import math

import pytest

from prime_megatron.trainer.evaluate import prompt_accuracy


def test_greedy_interval_is_the_binomial_one():
    acc, ci = prompt_accuracy([1.0, 0.0, 1.0, 0.0], samples=1)
    assert acc == 0.5
    assert ci == pytest.approx(1.96 * math.sqrt(0.25 / 4))


def test_samples_of_one_prompt_are_one_unit():
    # Two prompts, always right / always wrong: 8 scores but only 2 independent units.
    acc, ci = prompt_accuracy([1.0] * 4 + [0.0] * 4, samples=4)
    assert acc == 0.5
    assert ci == pytest.approx(1.96 * math.sqrt(0.25 / 2))
    # Every prompt half right: no spread between prompts, so no interval.
    assert prompt_accuracy([1.0, 0.0] * 4, samples=2) == (0.5, 0.0)
