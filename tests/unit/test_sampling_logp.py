"""Where the sampling policy's log-probs come from before the update, and when the engine's
own stop standing in for the trainer's."""

import pytest

from prime_megatron.algo.config import AlgoConfig
from prime_megatron.trainer.update import (
    ROLLOUT_GAP,
    UpdateSettings,
    needs_policy_forward,
    rollout_logp_agrees,
)


def _settings(mini_batches=1, use_prm=True, **algo) -> UpdateSettings:
    return UpdateSettings(algo=AlgoConfig(**algo), use_prm=use_prm, mini_batches=mini_batches,
                          micro_batching=4, temperature=1.0, vocab_size=8, pad_id=0)  # fmt: skip


@pytest.mark.parametrize(
    "settings, reads",
    [
        (_settings(), False),  # PRIME as the paper: the update's own forward has them
        (_settings(mini_batches=2), True),  # PPO's old log-probs after an optimizer step
        (_settings(process_reward_basis="policy"), True),
        (_settings(prm_reference="policy"), True),
        (_settings(use_prm=False, prm_reference="policy"), False),  # RLOO reads no PRM's
    ],
)
def test_a_policy_forward_runs_only_where_the_engines_log_probs_may_not_stand_in(settings, reads):
    assert settings.algo.reads_sampling_logp(settings.use_prm, settings.mini_batches) == reads
    assert needs_policy_forward(settings, rollout_logp=False) == reads
    assert not needs_policy_forward(settings, rollout_logp=True)


def test_the_engines_log_probs_agree_up_to_the_tolerance():
    assert rollout_logp_agrees({ROLLOUT_GAP: 0.05}, tolerance=0.05)
    assert not rollout_logp_agrees({ROLLOUT_GAP: 0.0501}, tolerance=0.05)
    assert not rollout_logp_agrees({ROLLOUT_GAP: float("nan")}, tolerance=0.05)
    assert rollout_logp_agrees({}, tolerance=0.05)  # nothing measured this step


def test_the_tolerance_is_validated():
    from prime_megatron.config.errors import ConfigError

    with pytest.raises(ConfigError, match="algo.sampling_logp_tolerance"):
        AlgoConfig(sampling_logp_tolerance=0.0).validate()
    with pytest.raises(ConfigError, match="algo.sampling_logp"):
        AlgoConfig(sampling_logp="vllm").validate()
