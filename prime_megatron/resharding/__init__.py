"""Megatron -> vLLM weight resharding: plan -> gather -> convert -> bucket -> push."""

from prime_megatron.resharding.gather import iter_full_hf_tensors, iter_hf_buckets
from prime_megatron.resharding.plan import SyncPlan, build_plan
from prime_megatron.resharding.sync import sync_weights
from prime_megatron.resharding.verify import (
    greedy_decode_megatron,
    logprob_mismatch,
    megatron_response_logprobs,
    verify_weight_sync,
)

__all__ = [
    "SyncPlan",
    "build_plan",
    "greedy_decode_megatron",
    "iter_full_hf_tensors",
    "iter_hf_buckets",
    "logprob_mismatch",
    "megatron_response_logprobs",
    "sync_weights",
    "verify_weight_sync",
]
