import math

import pytest

from prime_megatron.trainer.evaluate import paired_change, prompt_mean_ci95, prompt_means


def test_greedy_interval_is_the_binomial_one_with_sample_variance():
    acc, ci = prompt_mean_ci95(prompt_means([1.0, 0.0, 1.0, 0.0], samples=1))
    assert acc == 0.5
    assert ci == pytest.approx(1.96 * math.sqrt(0.25 / (4 - 1)))
    assert prompt_mean_ci95([1.0]) == (1.0, 0.0)  # one prompt: no spread to estimate


def test_samples_of_one_prompt_are_one_unit():
    # Two prompts, always right / always wrong: 8 scores but only 2 independent units.
    per_prompt = prompt_means([1.0] * 4 + [0.0] * 4, samples=4)
    assert per_prompt == [1.0, 0.0]
    assert prompt_mean_ci95(per_prompt) == pytest.approx((0.5, 1.96 * math.sqrt(0.25 / 1)))
    # Every prompt half right: no spread between prompts, so no interval.
    assert prompt_mean_ci95(prompt_means([1.0, 0.0] * 4, samples=2)) == (0.5, 0.0)


def test_paired_change_ignores_prompts_that_did_not_move():
    before = [1.0] * 50 + [0.0] * 50
    after = [1.0] * 50 + [0.0] * 40 + [1.0] * 10  # 10 prompts fixed, none broken
    change, ci = paired_change(before, after)
    assert change == pytest.approx(0.1)
    assert ci == pytest.approx(1.96 * math.sqrt(0.1 * 0.9 / 99))
    # The unpaired intervals of 0.5 and 0.6 would each be ~ +-0.1: pairing is much tighter.
    assert ci < prompt_mean_ci95(after)[1] / 1.5
    with pytest.raises(ValueError):
        paired_change([1.0], [1.0, 0.0])


def test_evaluate_keeps_every_response_with_its_row_and_score(monkeypatch):
    """Rows the encoder skips keep their place: each response names its row."""
    from types import SimpleNamespace

    import prime_megatron.trainer.evaluate as ev

    rows = [SimpleNamespace(messages=m) for m in ("a", "too long", "c")]
    encode = {"a": [1], "c": [3]}.get  # "too long" cannot be encoded: skipped

    class Engine:
        def generate(self, prompts, samples, seed, temperature):
            ids = [p + [9 + s] for p in prompts for s in range(samples)]
            groups = [g for g in range(len(prompts)) for _ in range(samples)]
            return SimpleNamespace(response_ids=ids, group_index=groups)

    tokenizer = SimpleNamespace(batch_decode=lambda ids, **_: [" ".join(map(str, i)) for i in ids])
    scores = iter([[1.0, 0.0, 0.0, 0.0]])
    monkeypatch.setattr(ev, "score_on_rank0", lambda _m, texts, _rows: (next(scores), {}))
    result = ev.evaluate(Engine(), rows, encode, tokenizer, rewards=None, samples=2)
    assert result.responses == [
        {"row": 0, "response": "1 9", "score": 1.0},
        {"row": 0, "response": "1 10", "score": 0.0},
        {"row": 2, "response": "3 9", "score": 0.0},
        {"row": 2, "response": "3 10", "score": 0.0},
    ]
    assert result.per_prompt == [0.5, 0.0] and result.metrics["prompts"] == 2.0
