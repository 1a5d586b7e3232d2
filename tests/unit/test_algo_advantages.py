"""RLOO advantages, returns and whitening: hand-worked numbers and properties."""

import pytest
import torch

from prime_megatron.algo import (
    discounted_returns,
    masked_whiten,
    outcome_rloo,
    prime_advantages,
    process_rloo,
    process_share,
)

# Two samples of one prompt: r^0 = [0.2, 0.4] (2 tokens), r^1 = [0.5] (1 token, then padding).
REWARDS = torch.tensor([[0.2, 0.4], [0.5, 0.0]])
MASK = torch.tensor([[1, 1], [1, 0]])
PAIR = torch.tensor([0, 0])


def test_outcome_rloo_hand_worked():
    # K = 4: A_i = r_i - mean of the other three.
    adv = outcome_rloo(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.full((4,), 7))
    torch.testing.assert_close(adv, torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    # Interleaved, non-contiguous group ids: {0, 2} and {1, 3}.
    adv = outcome_rloo(torch.tensor([1.0, 0.5, 0.0, 0.0]), torch.tensor([5, 9, 5, 9]))
    torch.testing.assert_close(adv, torch.tensor([1.0, 0.5, -1.0, -0.5]))


def test_process_rloo_official_hand_worked():
    # m = [0.3, 0.5]; r_hat = K/(K-1) r - (0.3 + 0.5)/(K-1) = 2r - 0.8 on valid tokens.
    got = process_rloo(REWARDS, MASK, PAIR)
    torch.testing.assert_close(got, torch.tensor([[-0.4, 0.0], [0.2, 0.0]]))


def test_process_rloo_paper_hand_worked():
    # m = [0.3, 0.5]; r_hat^i_t = r^i_t - (mean reward of the other sample) / (K-1).
    got = process_rloo(REWARDS, MASK, PAIR, baseline="paper")
    torch.testing.assert_close(got, torch.tensor([[-0.3, -0.1], [0.2, 0.0]]))


def test_returns_hand_worked():
    r = torch.tensor([[1.0, 2.0, 3.0, 5.0], [1.0, 9.0, 2.0, 4.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 1]])  # row 1 has a hole at t=1
    torch.testing.assert_close(
        discounted_returns(r, mask, gamma=1.0), torch.tensor([[6.0, 5, 3, 0], [7.0, 0, 6, 4]])
    )
    # gamma = 0.5: 3; 2 + 1.5; 1 + 1.75. The hole carries the return and is not discounted.
    torch.testing.assert_close(
        discounted_returns(r, mask, gamma=0.5),
        torch.tensor([[2.75, 3.5, 3.0, 0.0], [3.0, 0.0, 4.0, 4.0]]),
    )


def test_masked_whiten_hand_worked():
    values = torch.tensor([[1.0, 2.0], [3.0, 100.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    # mean 2, unbiased variance (1 + 0 + 1) / 2 = 1.
    torch.testing.assert_close(masked_whiten(values, mask), torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))


def test_prime_advantages_hand_worked():
    # Outcome RLOO [1, -1] on the last tokens, process RLOO [[-0.4, 0], [0.2, .]]:
    # token rewards [[-0.4, 1.0], [-0.8, .]] -> returns [[0.6, 1.0], [-0.8, 0]].
    outcome = torch.tensor([1.0, 0.0])
    adv, ret = prime_advantages(outcome, REWARDS, MASK, PAIR, whiten=False)
    torch.testing.assert_close(ret, torch.tensor([[0.6, 1.0], [-0.8, 0.0]]))
    torch.testing.assert_close(adv, ret)
    adv, _ = prime_advantages(outcome, REWARDS, MASK, PAIR)
    want = torch.tensor([[0.3526728, 0.7758802], [-1.1285530, 0.0]])
    torch.testing.assert_close(adv, want)
    outcome_only, _ = prime_advantages(outcome, None, MASK, PAIR, whiten=False)
    torch.testing.assert_close(outcome_only, torch.tensor([[1.0, 1.0], [-1.0, 0.0]]))


def test_process_share_hand_worked():
    # Process part of the returns (above): [-0.4, 0, 0.2], std 0.30551; outcome-only
    # returns [1, 1, -1], std 1.15470 (unbiased, over the valid tokens).
    outcome = torch.tensor([1.0, 0.0])
    share = process_share(outcome, REWARDS, MASK, PAIR)
    assert share == pytest.approx(0.30551 / 1.15470, rel=1e-4)
    assert process_share(outcome, 2 * REWARDS, MASK, PAIR) == pytest.approx(2 * share)
    assert process_share(outcome, REWARDS, MASK, PAIR, process_coef=0.5) == pytest.approx(share / 2)
    assert process_share(outcome, torch.zeros_like(REWARDS), MASK, PAIR) == 0.0
    assert process_share(torch.ones(2), REWARDS, MASK, PAIR) is None  # no outcome spread


def _random_batch(seed, groups=5, k=4, t=7):
    gen = torch.Generator().manual_seed(seed)
    b = groups * k
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    mask = (torch.arange(t) < lengths[:, None]).long()
    group = torch.randperm(b, generator=gen) % groups  # shuffled group ids
    outcome = torch.randint(0, 2, (b,), generator=gen).double()
    rewards = torch.randn(b, t, generator=gen, dtype=torch.float64)
    return outcome, rewards, mask, group


# One prompt, two 3-token samples; sample 1's process reward -1 sits on its middle token.
# official baseline, K=2: r_hat = 2 r - (m_0 + m_1) = 2 r + 1/3.
ORACLE = torch.tensor([[0.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
FULL = torch.ones(2, 3)
THIRD = 1 / 3


@pytest.mark.parametrize(
    "process_gamma, process_returns",
    [
        # 0: each token keeps its own reward; r_hat_1 = [1/3, -5/3, 1/3]
        (0.0, [[THIRD, THIRD, THIRD], [THIRD, -5 * THIRD, THIRD]]),
        # None = gamma = 1: reverse cumsum, the -1 reaches the token before it
        (None, [[1.0, 2 * THIRD, THIRD], [-1.0, -4 * THIRD, THIRD]]),
    ],
)
def test_process_gamma_discounts_the_process_stream_only(process_gamma, process_returns):
    outcome = torch.tensor([1.0, 0.0])  # A_o = +1, -1 on the last token, returned with gamma 1
    _, returns = prime_advantages(
        outcome, ORACLE, FULL, PAIR, gamma=1.0, whiten=False, process_gamma=process_gamma
    )
    expected = torch.tensor([[1.0] * 3, [-1.0] * 3]) + torch.tensor(process_returns)
    assert torch.allclose(returns, expected)
    share = process_share(outcome, ORACLE, FULL, PAIR, gamma=1.0, process_gamma=process_gamma)
    outcome_spread = torch.tensor([1.0, 1, 1, -1, -1, -1]).std()
    assert share == pytest.approx(float(torch.tensor(process_returns).std() / outcome_spread))


@pytest.mark.parametrize("seed", range(5))
def test_loo_outcome_advantages_sum_to_zero_per_group(seed):
    outcome, _, _, group = _random_batch(seed)
    adv = outcome_rloo(outcome + torch.rand(len(outcome), dtype=torch.float64), group)
    for g in group.unique():
        assert adv[group == g].sum().abs() < 1e-12


@pytest.mark.parametrize("baseline", ["official", "paper"])
def test_constant_rewards_give_zero_advantage(baseline):
    _, _, mask, group = _random_batch(0)
    # Same outcome within each group, process reward constant per group (lengths differ).
    outcome = group.double() % 2
    rewards = (0.1 * group.double()).unsqueeze(1).expand(mask.shape).clone()
    adv, ret = prime_advantages(outcome, rewards, mask, group, baseline=baseline)
    assert ret.abs().max() < 1e-12
    assert not adv.isnan().any() and adv.abs().max() < 1e-6


@pytest.mark.parametrize("baseline", ["official", "paper"])
def test_padding_is_excluded_exactly(baseline):
    outcome, rewards, mask, group = _random_batch(1)
    junk = rewards.clone()
    junk[mask == 0] = 1e6
    for gamma in (1.0, 0.9):
        a = prime_advantages(outcome, rewards, mask, group, gamma=gamma, baseline=baseline)
        b = prime_advantages(outcome, junk, mask, group, gamma=gamma, baseline=baseline)
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-12)
            assert not x[mask == 0].any()


def test_whitened_advantages_have_zero_mean_unit_variance_on_valid_tokens():
    outcome, rewards, mask, group = _random_batch(2)
    adv, _ = prime_advantages(outcome, rewards, mask, group)
    valid = adv[mask.bool()]
    assert valid.mean().abs() < 1e-12 and (valid.var() - 1).abs() < 1e-6


def test_singleton_group_is_rejected():
    with pytest.raises(ValueError, match=">= 2 samples"):
        outcome_rloo(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="baseline"):
        process_rloo(REWARDS, MASK, PAIR, baseline="eq5")
