"""PPO-clip loss, entropy bonus, k3 KL and loss aggregation: hand-worked numbers."""

import math

import pytest
import torch

from prime_megatron.algo import aggregate_loss, kl_k3, ppo_policy_loss

# Four tokens: ratio 1.5 / 1.5 / 0.5 / 0.5 against advantages +1 / -1 / +1 / -1, one padding.
OLD = torch.zeros(1, 5)
LOGP = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5, 9.0]]))
ADV = torch.tensor([[1.0, -1.0, 1.0, -1.0, 100.0]])
MASK = torch.tensor([[1, 1, 1, 1, 0]])


def test_ppo_clip_hand_worked():
    # max(-A r, -A clip(r)): -1.2 (clipped), 1.5, -0.5, 0.8 (clipped) -> mean 0.15.
    logp = LOGP.clone().requires_grad_(True)
    loss, metrics = ppo_policy_loss(logp, OLD, ADV, MASK, clip_eps=0.2)
    assert loss.item() == pytest.approx(0.15, abs=1e-6)
    assert metrics["clip_frac"].item() == pytest.approx(0.5)
    # approx_kl = mean(old - logp) = -(2 ln 1.5 + 2 ln 0.5) / 4.
    assert metrics["approx_kl"].item() == pytest.approx(-(math.log(1.5) + math.log(0.5)) / 2)
    loss.backward()
    # Only unclipped tokens carry gradient: d(-A r)/dlogp = -A r, divided by 4 tokens.
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 0.375, -0.125, 0.0, 0.0]]))


def test_entropy_bonus_and_kl_terms():
    entropy = torch.tensor([[1.0, 2.0, 3.0, 2.0, 50.0]])
    ref = LOGP + torch.log(torch.tensor(0.5))  # ref - logp = ln 0.5 on every token
    loss, metrics = ppo_policy_loss(
        LOGP, OLD, ADV, MASK, entropy=entropy, entropy_coef=0.1, ref_logp=ref, kl_coef=2.0
    )
    k3 = 0.5 + math.log(2) - 1  # exp(ln .5) - ln .5 - 1 = 0.193147
    assert metrics["entropy"].item() == pytest.approx(2.0)
    assert metrics["kl"].item() == pytest.approx(k3, abs=1e-6)
    assert loss.item() == pytest.approx(0.15 - 0.1 * 2.0 + 2.0 * k3, abs=1e-6)


def test_k3_is_an_unbiased_kl_estimator():
    # E_{y ~ p}[k3(y)] = KL(p || ref) exactly, since E_p[ref / p] = 1.
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    ref = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64)
    expectation = (p * kl_k3(p.log(), ref.log())).sum()
    torch.testing.assert_close(expectation, (p * (p / ref).log()).sum())
    assert (kl_k3(p.log(), ref.log()) >= 0).all() and kl_k3(p.log(), p.log()).abs().max() == 0


def test_token_mean_vs_seq_mean():
    values = torch.tensor([[1.0, 2.0, 3.0], [10.0, 99.0, 99.0], [7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])  # last row: no valid token
    assert aggregate_loss(values, mask, "token-mean").item() == pytest.approx(16 / 4)
    assert aggregate_loss(values, mask, "seq-mean").item() == pytest.approx((2 + 10) / 2)
    # A global normaliser (e.g. tokens over all micro-batches) replaces the local count.
    assert aggregate_loss(values, mask, "token-mean", denominator=8).item() == pytest.approx(2)
    assert aggregate_loss(values, mask, "seq-mean", denominator=4).item() == pytest.approx(3)


def test_huge_log_ratios_stay_finite():
    logp = torch.tensor([[200.0, -200.0]], requires_grad=True)
    loss, _ = ppo_policy_loss(
        logp, torch.zeros(1, 2), torch.tensor([[-1.0, 1.0]]), torch.ones(1, 2)
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()


def test_missing_inputs_for_nonzero_coefs_raise():
    with pytest.raises(ValueError, match="entropy"):
        ppo_policy_loss(LOGP, OLD, ADV, MASK, entropy_coef=0.01)
    with pytest.raises(ValueError, match="reference"):
        ppo_policy_loss(LOGP, OLD, ADV, MASK, kl_coef=0.01)
    with pytest.raises(ValueError, match="loss_agg"):
        aggregate_loss(ADV, MASK, "sum")
