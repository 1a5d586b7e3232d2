import pytest

from prime_megatron.train import _time_summary

pytestmark = pytest.mark.unit


def test_time_summary_names_each_part_of_the_job():
    line = _time_summary({"sft": 360.0, "rl": 600.0, "eval": 90.0}, 120)
    assert line == (
        "time: SFT 6.0 min, RL 10.0 min (120 steps, 5.0 s/step), held-out evaluation 1.5 min"
    )
    # A reused SFT checkpoint and no evaluation: those parts are left out.
    assert _time_summary({"rl": 30.0}, 3) == "time: RL 0.5 min (3 steps, 10.0 s/step)"
