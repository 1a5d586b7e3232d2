"""Check 5: the memory planner's verdict as a report line."""

from prime_megatron.preflight.plan import plan_verdict
from prime_megatron.preflight.report import FAIL, PASS
from prime_megatron.trainer.config import load_train_config
from tests.unit.preflight.conftest import write_job


def test_fits_is_pass_and_does_not_fit_is_fail(tmp_path, model_dir):
    cfg = load_train_config(write_job(tmp_path, model_dir)).validate(2)
    fits = plan_verdict(cfg, 2, 80).check()
    assert fits.status == PASS and fits.summary.startswith("FITS on 2 x 80 GiB: peak ")
    # vLLM takes gpu_memory_utilization=0.5 of each device, the rest is runtime slack.
    tight = plan_verdict(cfg, 2, 2).check()
    assert tight.status == FAIL and tight.summary.startswith("DOES NOT FIT on 2 x 2 GiB")
    assert "in phase '" in tight.summary and tight.details[1].startswith("the breakdown")
