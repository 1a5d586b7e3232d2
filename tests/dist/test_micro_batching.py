"""Token-budget micro-batches and packed sequences compute what row micro-batches do."""

import json

import pytest

from tests.dist.conftest import SCRIPTS
from tests.torchrun import run_torchrun


@pytest.mark.dist
@pytest.mark.parametrize("tp", [1, 2])
def test_budget_packing_and_last_position_logits_match(tp, megatron_ckpts):
    out = run_torchrun(SCRIPTS / "micro_batching.py", tp, str(megatron_ckpts["qwen2"]), str(tp))
    report = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    for name in ("budget", "packed"):
        r = report[name]
        assert r["logp"] < 1e-5 and r["entropy"] < 1e-5, report
        assert r["grad_rel"] < 1e-5 and r["off_mask_zero"], report
        assert r["tokens"] == report["tokens"], report  # every response token, once
    assert report["last_position"] < 1e-5, report
