import pytest
import torch

from prime_megatron.evidence.metrics import PHASES
from prime_megatron.trainer.models import Models
from prime_megatron.trainer.offload import Offloader
from prime_megatron.trainer.optim import ShardedAdamW
from prime_megatron.trainer.phases import PHASE_MODELS, Phase, PhaseTimer


def tiny_models(with_prm: bool = True) -> Models:
    torch.manual_seed(0)

    def model_and_opt():
        model = torch.nn.Linear(4, 4)
        opt = ShardedAdamW(list(model.parameters()), parallel=None, lr=1e-3)
        model(torch.ones(2, 4)).sum().backward()
        opt.opt.step()  # populate the AdamW moments
        return model, opt

    policy, policy_opt = model_and_opt()
    models = Models(policy=policy, policy_opt=policy_opt)
    if with_prm:
        models.prm, models.prm_opt = model_and_opt()
        models.ref = torch.nn.Linear(4, 4).requires_grad_(False)
    return models


def test_each_phase_keeps_only_its_models_resident():
    cpu = torch.device("cpu")
    off = Offloader(tiny_models(), compute=cpu, storage=cpu)
    assert off.resident == {"policy", "prm", "ref"}
    expected = {
        Phase.ROLLOUT: set(),
        Phase.LOGPROBS: {"policy", "prm", "ref"},
        Phase.PRM_UPDATE: {"prm"},
        Phase.POLICY_UPDATE: {"policy"},
        Phase.WEIGHT_SYNC: {"policy"},
        Phase.STEP_CREDIT: {"policy", "prm", "ref"},
    }
    for phase, resident in expected.items():
        off.enter(phase)
        assert off.resident == resident, phase
    off.restore()
    assert off.resident == {"policy", "prm", "ref"}


def test_a_prm_of_its_own_start_brings_its_reference_to_the_logprobs_only():
    models = tiny_models()
    models.ref, models.prm_ref = None, torch.nn.Linear(4, 4).requires_grad_(False)
    off = Offloader(models, compute=torch.device("cpu"), storage=torch.device("cpu"))
    assert off.resident == {"policy", "prm", "prm_ref"}
    off.enter(Phase.LOGPROBS)
    assert off.resident == {"policy", "prm", "prm_ref"}
    off.enter(Phase.PRM_UPDATE)
    assert off.resident == {"prm"}
    off.enter(Phase.STEP_CREDIT)  # the probe re-scores with the PRM and its reference
    assert off.resident == {"policy", "prm", "prm_ref"}


def test_rloo_has_no_prm_or_reference_to_move():
    cpu = torch.device("cpu")
    off = Offloader(tiny_models(with_prm=False), compute=cpu, storage=cpu)
    off.enter(Phase.LOGPROBS)
    assert off.resident == {"policy"}


def test_timer_hook_runs_before_the_timed_body():
    cpu = torch.device("cpu")
    off = Offloader(tiny_models(), compute=cpu, storage=cpu)
    timer = PhaseTimer(off.enter)
    with timer(Phase.PRM_UPDATE):
        assert off.resident == {"prm"}
    assert timer.metrics().keys() == {"time/prm_update"}


def test_every_phase_has_its_models_and_unknown_names_raise():
    assert set(PHASE_MODELS) == set(Phase)
    # The benchmarks' phase breakdown reads time/<phase> by these names (no trainer import).
    assert set(PHASES) <= {p.value for p in Phase}
    off = Offloader(tiny_models(), compute=torch.device("cpu"), storage=torch.device("cpu"))
    with pytest.raises(ValueError, match="policy_updates"):
        off.enter("policy_updates")
    with pytest.raises(ValueError, match="rolout"), PhaseTimer()("rolout"):
        pass


def test_offload_round_trip_keeps_values():
    models = tiny_models()
    before = [p.detach().clone() for p in models.policy.parameters()]
    moments = [s["exp_avg"].clone() for s in models.policy_opt.opt.state.values()]
    # On a CPU-only machine both devices are the host; values must survive the round trip.
    off = Offloader(models, compute=torch.device("cpu"), storage=torch.device("cpu"))
    off.enter(Phase.ROLLOUT)
    off.enter(Phase.POLICY_UPDATE)
    for p, q in zip(models.policy.parameters(), before, strict=True):
        assert torch.equal(p, q)
    for s, m in zip(models.policy_opt.opt.state.values(), moments, strict=True):
        assert torch.equal(s["exp_avg"], m)
