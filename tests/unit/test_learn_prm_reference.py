"""Which model the PRM is measured against in ``learn``: its own frozen start (``prm_ref``)
when it has one (prm_model), else the policy's frozen start (``ref``); the policy's KL term
reads ``ref`` either way. The passes are stubbed: each model's log-probs are one constant."""

import dataclasses

import pytest
import torch

from prime_megatron.algo import AlgoConfig
from prime_megatron.passes.batch import Group, SampleBatch
from prime_megatron.passes.run import PassResult
from prime_megatron.trainer import update
from prime_megatron.trainer.models import Models
from prime_megatron.trainer.phases import PhaseTimer

LEVELS = {"policy": -1.0, "prm": -2.0, "ref": -3.0, "prm_ref": -5.0}


class _Model(torch.nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class _Optimizer:
    def step(self) -> dict[str, float]:
        return {"grad_norm": 0.0, "lr": 1.0}


@pytest.fixture
def seen(monkeypatch) -> list[tuple[str, torch.Tensor | None]]:
    """(model, the ``ref_logp`` its loss was given) per training pass of the stub."""
    calls = []

    def run_pass(model, parallel, batch, micro, temperature, *, vocab_size, loss_fn=None,
                 with_entropy=False):  # fmt: skip
        logp = torch.full_like(batch.mask, LEVELS[model.name]) * batch.mask
        entropy = torch.zeros_like(logp)
        metrics = {}
        if loss_fn is not None:
            calls.append((model.name, batch.extras.get("ref_logp")))
            _, metrics = loss_fn(logp.clone().requires_grad_(), entropy, batch)
        return PassResult(logp, entropy, metrics)

    monkeypatch.setattr(update, "run_pass", run_pass)
    return calls


def _batch() -> SampleBatch:
    groups = [Group([1, 5], [[6, 7, 2], [8, 2]], [[-0.5] * 3, [-0.5] * 2], [False, False],
                    [1.0, 0.0], row, 0) for row in range(2)]  # fmt: skip
    return SampleBatch.from_groups(groups, pad_id=0)


def _learn(with_prm_ref: bool) -> update.LearnResult:
    models = Models(policy=_Model("policy"), policy_opt=_Optimizer(), prm=_Model("prm"),
                    prm_opt=_Optimizer(), ref=_Model("ref"))  # fmt: skip
    if with_prm_ref:
        models.prm_ref = _Model("prm_ref")
    algo = dataclasses.replace(AlgoConfig(), kl_coef=0.1).validate()  # the policy reads ref
    settings = update.UpdateSettings(algo=algo, use_prm=True, mini_batches=1, micro_batching=8,
                                     temperature=1.0, vocab_size=16, pad_id=0)  # fmt: skip
    return update.learn(models, None, _batch(), settings, PhaseTimer())


@pytest.mark.parametrize("with_prm_ref", [True, False])
def test_the_prm_is_measured_against_its_own_start_when_it_has_one(seen, with_prm_ref):
    result = _learn(with_prm_ref)
    prm_ref = LEVELS["prm_ref" if with_prm_ref else "ref"]
    mask = _batch().mask
    by_model = dict(seen)
    assert by_model["prm"].equal(prm_ref * mask)  # the PRM's loss
    assert by_model["policy"].equal(LEVELS["ref"] * mask)  # the policy's KL term
    assert result.prm_ref_logp.equal(prm_ref * mask)  # what the PRM's replay keeps
    assert result.sft_logp.equal(LEVELS["ref"] * mask)
    assert result.token_q.equal((LEVELS["prm"] - prm_ref) * mask)  # the implicit reward


def test_the_step_credit_probe_reads_the_same_reference():
    """``Models.prm_reference`` (trainer/credit.py's probe) picks as ``learn`` does."""
    policy, ref, prm_ref = _Model("policy"), _Model("ref"), _Model("prm_ref")
    models = Models(policy=policy, policy_opt=_Optimizer(), ref=ref)
    assert models.prm_reference("sft") is ref and models.prm_reference("policy") is policy
    models.prm_ref = prm_ref
    assert models.prm_reference("sft") is prm_ref
