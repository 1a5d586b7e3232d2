"""The PRM's loss as the trainer builds it: CE plus the optional L1 on log-ratios."""

import dataclasses

import pytest
import torch

from prime_megatron.algo import AlgoConfig, log_ratio_l1, prm_ce_loss
from prime_megatron.passes.batch import SampleBatch
from prime_megatron.trainer.update import _prm_loss_fn

PRM = torch.tensor([[-1.0, -2.0, -0.5], [-0.5, -1.0, 3.0]])
REF = torch.tensor([[-1.5, -1.0, -0.5], [-2.5, -2.0, -9.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
OUTCOME = torch.tensor([1.0, 0.0])


def _micro_batch() -> SampleBatch:
    n, width = MASK.shape
    return SampleBatch(
        tokens=torch.zeros(n, width + 1, dtype=torch.long),
        labels=torch.zeros(n, width, dtype=torch.long),
        mask=MASK,
        rollout_logp=torch.zeros(n, width),
        outcome=OUTCOME,
        group=torch.zeros(n, dtype=torch.long),
        truncated=torch.zeros(n, dtype=torch.bool),
        extras={"ref_logp": REF},
    )


@pytest.mark.parametrize("coef", [0.0, 0.1])
def test_l1_coef_adds_the_penalty_and_logs_both_terms(coef):
    algo = dataclasses.replace(AlgoConfig(), prm_l1_coef=coef).validate()
    # This micro-batch is half of a mini-batch of 4: every term counts at half weight.
    loss, metrics = _prm_loss_fn(algo, mini_batch_size=4)(PRM, None, _micro_batch())
    ce = prm_ce_loss(PRM, REF, MASK, OUTCOME, algo.beta).item()
    l1 = log_ratio_l1(PRM, REF, MASK).item()
    assert l1 == pytest.approx(2.25)
    assert loss.item() == pytest.approx(0.5 * (ce + coef * l1))
    assert metrics == pytest.approx({"prm_loss": 0.5 * ce, "prm_abs_q": 0.5 * l1})
