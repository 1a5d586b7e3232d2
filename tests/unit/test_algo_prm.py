"""Implicit process rewards and PRM losses: hand-worked numbers and mask properties."""

import math

import pytest
import torch

from prime_megatron.algo import (
    dpo_opposite_q,
    implicit_process_rewards,
    log_ratio_l1,
    prm_ce_loss,
    prm_dpo_loss,
    sequence_q,
)

# Row 0: q = [0.5, -1.0, 0.0, pad]; row 1: q = [2.0, 1.0, pad, pad]. The padded entries hold
# junk on purpose: nothing may read them.
PRM = torch.tensor([[-1.0, -2.0, -0.5, 7.0], [-0.5, -1.0, 3.0, 3.0]])
REF = torch.tensor([[-1.5, -1.0, -0.5, -3.0], [-2.5, -2.0, -9.0, 1.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])


def test_token_rewards_without_norm_are_beta_q():
    r = implicit_process_rewards(PRM, REF, MASK, beta=0.05, norm="none")
    want = torch.tensor([[0.025, -0.05, 0.0, 0.0], [0.1, 0.05, 0.0, 0.0]])
    torch.testing.assert_close(r, want)


def test_whole_granularity_puts_the_sum_on_the_last_token():
    r = implicit_process_rewards(PRM, REF, MASK, beta=0.05, granularity="whole", norm="none")
    want = torch.tensor([[0.0, 0.0, -0.025, 0.0], [0.0, 0.15, 0.0, 0.0]])
    torch.testing.assert_close(r, want)


def test_batch_norm_divides_by_max_abs_reverse_cumsum():
    # Reverse cumsums: row 0 [-0.025, -0.05, 0, 0], row 1 [0.15, 0.05, 0, 0] -> max |.| 0.15.
    r = implicit_process_rewards(PRM, REF, MASK, beta=0.05)
    want = torch.tensor([[0.1666656, -0.3333311, 0.0, 0.0], [0.6666622, 0.3333311, 0.0, 0.0]])
    torch.testing.assert_close(r, want)
    assert r.flip(-1).cumsum(-1).abs().max() <= 1.0


def test_rewards_carry_no_gradient():
    prm = PRM.clone().requires_grad_(True)
    assert not implicit_process_rewards(prm, REF, MASK).requires_grad


def test_log_ratio_l1_hand_worked():
    # |q| sums: row 0 0.5 + 1 + 0 = 1.5, row 1 2 + 1 = 3; mean 2.25. Gradient sign(q) / B.
    prm = PRM.clone().requires_grad_(True)
    loss = log_ratio_l1(prm, REF, MASK)
    assert loss.item() == pytest.approx(2.25)
    loss.backward()
    want = torch.tensor([[0.5, -0.5, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    torch.testing.assert_close(prm.grad, want)


def test_ce_loss_hand_worked():
    # beta*Q = [-0.025, 0.15], r_o = [1, 0]: mean(log(1 + e^0.025), log(1 + e^0.15)).
    loss = prm_ce_loss(PRM, REF, MASK, torch.tensor([1.0, 0.0]), beta=0.05)
    assert loss.item() == pytest.approx(0.7383412, abs=1e-6)
    # Gradient w.r.t. the PRM log-probs: beta * (sigmoid(beta*Q) - r_o) / B on valid tokens.
    prm = PRM.clone().requires_grad_(True)
    prm_ce_loss(prm, REF, MASK, torch.tensor([1.0, 0.0]), beta=0.05).backward()
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    g0, g1 = 0.05 * (sig(-0.025) - 1) / 2, 0.05 * sig(0.15) / 2
    want = torch.tensor([[g0, g0, g0, 0.0], [g1, g1, 0.0, 0.0]])
    torch.testing.assert_close(prm.grad, want)


def test_dpo_opposite_means_and_loss_hand_worked():
    q = torch.tensor([2.0, -1.0, 0.0, 4.0, 1.0])
    outcome = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    group = torch.tensor([3, 3, 3, 8, 8])
    opposite = dpo_opposite_q(q, outcome, group)
    # Group 3: the correct sample faces mean(-1, 0); the wrong ones face 2. Group 8 has no
    # wrong sample: 0.
    torch.testing.assert_close(opposite, torch.tensor([-0.5, 2.0, 2.0, 0.0, 0.0]))
    # Encode q as one valid token per sample: prm - ref = q.
    prm, ref, mask = q.unsqueeze(1), torch.zeros(5, 1), torch.ones(5, 1)
    loss = prm_dpo_loss(prm, ref, mask, outcome, opposite, beta=0.05)
    # s * beta * (Q - opposite) = [0.125, 0.15, 0.1, 0.2, 0.05]: mean of -log sigmoid(.).
    assert loss.item() == pytest.approx(0.6329103, abs=1e-6)


def test_fractional_outcomes_pick_strictly_worse_samples():
    q = torch.tensor([1.0, 3.0, 5.0])
    opposite = dpo_opposite_q(q, torch.tensor([0.5, 0.25, 1.0]), torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(opposite, torch.tensor([3.0, 0.0, 2.0]))


def test_padding_never_matters():
    junk_prm, junk_ref = PRM.clone(), REF.clone()
    junk_prm[MASK == 0] = 1e4
    junk_ref[MASK == 0] = -1e4
    for granularity in ("token", "whole"):
        a = implicit_process_rewards(PRM, REF, MASK, granularity=granularity)
        b = implicit_process_rewards(junk_prm, junk_ref, MASK, granularity=granularity)
        assert torch.equal(a, b) and not a[MASK == 0].any()
    torch.testing.assert_close(sequence_q(junk_prm, junk_ref, MASK), torch.tensor([-0.5, 3.0]))
    outcome = torch.tensor([1.0, 0.0])
    assert prm_ce_loss(PRM, REF, MASK, outcome) == prm_ce_loss(junk_prm, junk_ref, MASK, outcome)


def test_bad_choices_raise():
    with pytest.raises(ValueError, match="granularity"):
        implicit_process_rewards(PRM, REF, MASK, granularity="step")
    with pytest.raises(ValueError, match="norm"):
        implicit_process_rewards(PRM, REF, MASK, norm="layer")
