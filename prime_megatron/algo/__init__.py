"""The PRIME math as pure tensor functions (no parallelism, no Megatron): docs/design.md 2."""

from prime_megatron.algo.advantages import (
    discounted_returns,
    masked_whiten,
    outcome_rloo,
    prime_advantages,
    process_rloo,
    process_share,
)
from prime_megatron.algo.config import AlgoConfig
from prime_megatron.algo.policy_loss import aggregate_loss, kl_k3, ppo_policy_loss
from prime_megatron.algo.prm import (
    dpo_opposite_q,
    implicit_process_rewards,
    log_ratio_l1,
    prm_ce_loss,
    prm_dpo_loss,
    sequence_q,
    token_q,
)
from prime_megatron.algo.prompt_filter import CarryOverBuffer, filter_groups

__all__ = [
    "AlgoConfig",
    "CarryOverBuffer",
    "aggregate_loss",
    "discounted_returns",
    "dpo_opposite_q",
    "filter_groups",
    "implicit_process_rewards",
    "kl_k3",
    "log_ratio_l1",
    "masked_whiten",
    "outcome_rloo",
    "ppo_policy_loss",
    "prime_advantages",
    "prm_ce_loss",
    "prm_dpo_loss",
    "process_rloo",
    "process_share",
    "sequence_q",
    "token_q",
]
