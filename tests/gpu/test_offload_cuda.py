"""Offloading on a real accelerator (skipped without CUDA, see tests/conftest.py)."""

import torch

from prime_megatron.trainer.offload import Offloader
from tests.unit.test_offload import tiny_models


def test_idle_models_leave_the_gpu_and_come_back():
    models = tiny_models()
    for name in ("policy", "prm", "ref"):
        getattr(models, name).cuda()
    for opt in (models.policy_opt, models.prm_opt):
        for state in opt.opt.state.values():
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = state[key].cuda()
    expected = [p.detach().clone() for p in models.prm.parameters()]
    off = Offloader(models, compute=torch.device("cuda", 0), storage=torch.device("cpu"))
    off.enter("policy_update")
    assert all(p.is_cuda for p in models.policy.parameters())
    assert not any(p.is_cuda for p in models.prm.parameters())
    assert not any(s["exp_avg"].is_cuda for s in models.prm_opt.opt.state.values())
    off.enter("prm_update")
    assert all(p.is_cuda for p in models.prm.parameters())
    assert all(s["exp_avg"].is_cuda for s in models.prm_opt.opt.state.values())
    for p, q in zip(models.prm.parameters(), expected, strict=True):
        assert torch.equal(p, q)
