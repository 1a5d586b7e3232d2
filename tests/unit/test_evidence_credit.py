import pytest

from prime_megatron.evidence.credit import (
    StepCredit,
    all_steps,
    by_dump,
    by_position,
    credit_report,
    first_vs_preceding,
    first_vs_preceding_carry,
    locatable,
    measure,
    online_credit,
    random_direction,
    sign_flipped,
    step_credit,
    step_rewards,
    token_offsets,
    with_token_q,
    within_response,
)
from prime_megatron.evidence.samples import DecodedSample

PROMPT = "47+38-19"
WRONG_AT_1 = "47+38=85\n85-19=67\n\\boxed{67}"  # steps of 9, 9 and 10 characters
RAWS = "47+38=84\n85-19=66\n\\boxed{66}"
RIGHT = "47+38=85\n85-19=66\n\\boxed{66}"


def decoded(response: str, q, step: int = 2) -> DecodedSample:
    pieces = (*response, "")  # one token per character, then EOS (no text)
    return DecodedSample(step, PROMPT, pieces, 0.0, None if q is None else tuple(q))


def credit(rewards, first_wrong, step=2, raws=False, carry=None) -> StepCredit:
    spans = tuple((i, i + 1) for i in range(len(rewards)))  # one token per step
    carry = tuple(carry) if carry is not None else (False,) * len(rewards)
    return StepCredit(step, first_wrong, raws, tuple(rewards), spans, tuple(rewards), carry)


def test_token_offsets_give_empty_spans_to_special_tokens():
    assert token_offsets(["4", "7", "", "\n"]) == [(0, 1), (1, 2), (2, 2), (2, 3)]


def test_step_rewards_sum_each_span():
    assert step_rewards([1.0, 2.0, 3.0, 4.0], [(0, 1), (1, 3), (3, 3)]) == (1.0, 5.0, 0.0)


def test_step_credit_sums_q_over_each_line_and_skips_eos():
    q = [0.1] * 9 + [-0.2] * 9 + [0.0] * 10 + [5.0]  # the EOS token's 5.0 is in no step
    c = step_credit(decoded(WRONG_AT_1, q))
    assert c.token_spans == ((0, 9), (9, 18), (18, 28))
    assert c.rewards == pytest.approx((0.9, -1.8, 0.0))
    assert (c.first_wrong, c.raws, c.step) == (1, False, 2)
    assert step_credit(decoded(RAWS, [0.0] * 29)).raws
    assert step_credit(decoded(RIGHT, None)) is None


def test_locatable_needs_an_existing_wrong_line():
    stopped_early = step_credit(decoded("47+38=85\n", [0.0] * 10))
    assert stopped_early.first_wrong == 1 and len(stopped_early.rewards) == 1
    assert not locatable(stopped_early)
    assert not locatable(step_credit(decoded(RIGHT, [0.0] * 29)))
    assert locatable(credit([1.0], 0))


def test_first_vs_preceding_and_all_steps_labels():
    c = step_credit(decoded(WRONG_AT_1, [0.1] * 9 + [-0.2] * 9 + [0.0] * 11))
    scores, labels = first_vs_preceding([c])
    assert labels == [0, 1] and scores == pytest.approx([-0.9, 1.8])
    scores, labels = all_steps([c, credit([1.0, 2.0], None)])
    assert labels == [0, 1, 1, 0, 0]
    assert scores == pytest.approx([-0.9, 1.8, 0.0, -1.0, -2.0])


# A: wrong at 1 with rewards (1, -1); B: wrong at 2 with all rewards 0.5 (ties).
A, B = credit([1.0, -1.0], 1), credit([0.5, 0.5, 0.5], 2)


def test_pooled_auroc_by_hand():
    # scores -r: positives {1, -0.5}, negatives {-1, -0.5, -0.5}:
    # 1 beats all three; -0.5 beats -1 and ties twice -> (3 + 1 + 0.5 + 0.5) / 6
    assert measure([A, B]) == pytest.approx(5 / 6)


def test_within_response_pairs_only_inside_a_response():
    # A: 1 win; B: 2 ties -> (1 + 0.5 + 0.5) / 3
    assert within_response([A, B]) == pytest.approx(2 / 3)
    assert within_response([credit([1.0], 0)]) is None


def test_position_baseline_scores_by_index():
    # indices: positives {1, 2}; negatives {0, 0, 1}: 1 -> 2 wins + 1 tie; 2 -> 3 wins
    assert measure([A, B], by_position(first_vs_preceding)) == pytest.approx(5.5 / 6)


def test_sign_flip_keeps_magnitudes_and_is_seeded():
    import random

    q = [0.5, -1.0, 2.0, 0.0]
    flipped = sign_flipped(q, random.Random(1))
    assert [abs(x) for x in flipped] == [abs(x) for x in q]
    assert random_direction([A, B], 5, seed=3) == random_direction([A, B], 5, seed=3)
    zero = [with_token_q(A, [0.0, 0.0]), with_token_q(B, [0.0] * 3)]
    assert random_direction(zero, 4, seed=0) == [0.5] * 4


def test_with_token_q_recomputes_rewards():
    assert with_token_q(A, [2.0, 3.0]).rewards == (2.0, 3.0)


def test_by_dump_one_row_per_step():
    assert by_dump([A, credit([2.0, -2.0], 1, step=5)]) == [[2, 1.0, 1], [5, 1.0, 1]]


def test_credit_report_untrained_trained_and_raws():
    n = len(WRONG_AT_1) + 1
    located = [0.0] * 9 + [-0.3] * 9 + [0.0] * 11  # the wrong line (1) gets the low reward
    samples = [
        decoded(WRONG_AT_1, [0.0] * n, step=1),  # untrained PRM: q = 0
        decoded(RIGHT, [0.0] * n, step=1),
        decoded(WRONG_AT_1, located, step=2),
        decoded(RAWS, [-0.3] * 9 + [0.1] * 20, step=2),
        decoded(WRONG_AT_1, located, step=3),
        decoded(RIGHT, None, step=3),  # no q: left out
    ]
    report = credit_report(samples, bins=2, repeats=4, seed=0)
    assert report["dumps"] == 3 and report["responses"] == 5
    untrained = report["untrained"]
    assert untrained["auroc"] == 0.5 and untrained["max_abs_q"] == 0.0
    assert [s["steps"] for s in report["over_training"]] == [[2, 2], [3, 3]]
    assert report["trained_pooled"]["auroc"] == 1.0
    assert report["trained_pooled"]["wrong_steps"] == 3
    assert report["raws_responses"] == {"responses": 1, "auroc": None,
                                        "auroc_within_response": None}  # fmt: skip
    assert [row[0] for row in report["by_dump"]] == [1, 2, 3]
    assert len(report["trained_pooled"]["random_direction"]) == 3


def test_step_credit_flags_carry_steps():
    c = step_credit(decoded(WRONG_AT_1, [0.0] * 29))
    assert c.carry == (True, True, False)  # 7+8 carries, 5-9 borrows, the boxed line
    assert step_credit(decoded("41+38=79\n\\boxed{79}", [0.0] * 13)).carry == (False, False)


def test_carry_labeling_keeps_only_carry_steps():
    a = credit([0.0, -1.0, -2.0], first_wrong=2, carry=[True, False, True])
    b = credit([-3.0, 1.0], first_wrong=1, carry=[False, True])
    scores, labels = first_vs_preceding_carry([a, b])
    assert (scores, labels) == ([-0.0, 2.0, -1.0], [0, 1, 1])
    assert first_vs_preceding_carry([credit([1.0], None, carry=[True])]) == ([], [])


def test_online_credit_compares_prm_with_its_baselines_on_the_same_steps():
    # The PRM puts the lowest reward on each first wrong step; the model's confidence
    # (per-token log-probs) puts it on the step before.
    a = credit([0.0, 0.0, -1.0], first_wrong=2, carry=[True, True, True])
    b = credit([0.0, -1.0], first_wrong=1, carry=[True, True])
    confidence = {"policy": [[-0.1, -2.0, -0.05], [-3.0, -0.01]]}
    out = online_credit([a, b], confidence, repeats=8, seed=0)
    assert out["credit/prm_auroc"] == 1.0 and out["credit/prm_auroc_carry"] == 1.0
    assert out["credit/confidence_policy_auroc"] == 0.0
    # Later steps are more suspect: 5.5 of 6 pairs (b's wrong step ties a's step 1).
    assert out["credit/position_auroc"] == pytest.approx(5.5 / 6)
    assert out["credit/wrong_steps"] == 2.0
    assert 0.0 <= out["credit/random_auroc"] <= 1.0
    none_wrong = online_credit([credit([0.0], None)], {}, repeats=2, seed=0)
    assert none_wrong == {"credit/wrong_steps": 0.0}
