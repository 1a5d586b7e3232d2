"""AlgoConfig defaults (docs/design.md section 2) and validation messages."""

import dataclasses

import pytest

from prime_megatron.algo import AlgoConfig
from prime_megatron.config.errors import ConfigError


def test_defaults_are_the_design_defaults():
    cfg = AlgoConfig().validate()
    assert (cfg.beta, cfg.clip_eps, cfg.gamma) == (0.05, 0.2, 1.0)
    assert (cfg.reward_granularity, cfg.process_reward_norm) == ("token", "batch_norm")
    assert (cfg.prm_loss, cfg.prm_update, cfg.process_baseline) == ("ce", "after", "official")
    assert (cfg.entropy_coef, cfg.kl_coef, cfg.whiten, cfg.loss_agg) == (0, 0, True, "token-mean")
    assert cfg.accuracy_range == (0.2, 0.8)
    assert (cfg.process_gamma, cfg.process_reward_source) == (None, "prm")
    assert dataclasses.replace(cfg, process_gamma=0.0).validate().process_gamma == 0.0
    assert dataclasses.replace(cfg, filter_accuracy=False).accuracy_range is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("beta", 0.0),
        ("reward_granularity", "step"),
        ("process_reward_norm", "layer"),
        ("prm_loss", "mse"),
        ("prm_update", "during"),
        ("process_baseline", "eq5"),
        ("gamma", 1.5),
        ("process_gamma", -0.1),
        ("process_gamma", 1.5),
        ("process_reward_source", "labels"),
        ("clip_eps", 0.0),
        ("entropy_coef", -0.1),
        ("kl_coef", -1.0),
        ("prm_l1_coef", -0.01),
        ("loss_agg", "sum"),
        ("accuracy_low", -0.1),
        ("accuracy_high", 0.1),
        ("accuracy_high", 1.2),
        ("oversample_factor", 0.5),
        ("carryover_max_age", -1),
    ],
)
def test_bad_values_name_the_field(field, value):
    cfg = dataclasses.replace(AlgoConfig(), **{field: value})
    with pytest.raises(ConfigError, match=f"algo.{field}="):
        cfg.validate()


def test_both_stream_weights_zero_is_rejected():
    with pytest.raises(ConfigError, match="cannot both be 0"):
        AlgoConfig(outcome_coef=0.0, process_coef=0.0).validate()


def test_prm_replay_needs_the_frozen_reference():
    with pytest.raises(ConfigError, match="algo.prm_replay_steps"):
        AlgoConfig(prm_replay_steps=2, prm_reference="policy").validate()
    with pytest.raises(ConfigError, match="algo.prm_replay_steps"):
        AlgoConfig(prm_replay_steps=-1).validate()
    assert AlgoConfig(prm_replay_steps=2).validate().prm_replay_steps == 2
