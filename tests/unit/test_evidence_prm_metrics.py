import pytest
import torch

from prime_megatron.evidence.prm_metrics import (
    outcome_auroc,
    pairwise_accuracy,
    prm_batch_metrics,
    sign_accuracy,
)


def test_pairwise_accuracy_counts_within_group_pairs_only():
    q = torch.tensor([2.0, 1.0, 0.0, -5.0, 9.0, 9.0])
    outcome = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    group = torch.tensor([0, 0, 0, 0, 1, 1])
    # Group 0: correct {2, 0} vs wrong {1, -5}: pairs (2>1) (2>-5) (0<1) (0>-5) -> 3/4.
    # Group 1 has no mixed pair -> 0.5 (official). Mean over groups.
    assert pairwise_accuracy(q, outcome, group) == pytest.approx((0.75 + 0.5) / 2)
    # Across groups nothing is compared: a global offset between groups changes nothing.
    shifted = q + torch.tensor([0.0, 0.0, 0.0, 0.0, -100.0, -100.0])
    assert pairwise_accuracy(shifted, outcome, group) == pairwise_accuracy(q, outcome, group)


def test_pairwise_accuracy_ties_and_fractional_outcomes():
    q = torch.tensor([1.0, 1.0, 3.0])
    outcome = torch.tensor([1.0, 0.0, 0.5])
    group = torch.zeros(3, dtype=torch.long)
    # pairs (weight): (0,1) tie -> 0.5 (w 1); (0,2) 1<3 wrong (w .5); (1,2) 1<3 right (w .5)
    assert pairwise_accuracy(q, outcome, group) == pytest.approx((0.5 + 0 + 0.5) / 2)


def test_outcome_auroc_and_sign_accuracy_differ_on_a_shifted_q():
    q = torch.tensor([-1.0, -2.0, -3.0, -4.0])  # ranked right, all negative
    outcome = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert outcome_auroc(q, outcome) == 1.0
    assert sign_accuracy(q, outcome) == 0.5
    assert outcome_auroc(q, torch.ones(4)) is None


def test_batch_metrics_names():
    q = torch.tensor([1.0, -1.0])
    m = prm_batch_metrics(q, torch.tensor([1.0, 0.0]), torch.tensor([0, 0]))
    assert m == {"prm/pairwise_acc": 1.0, "prm/sign_acc": 1.0, "prm/q_mean": 0.0,
                 "prm/outcome_auroc": 1.0}  # fmt: skip
    assert "prm/outcome_auroc" not in prm_batch_metrics(q, torch.ones(2), torch.tensor([0, 0]))
