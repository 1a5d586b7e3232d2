"""Token log-prob and entropy kernels that never materialise a full-vocab log-softmax.

``token_logprobs_and_entropy`` / ``token_logprobs`` pick the Triton kernel on CUDA and the
chunked torch reference otherwise; pass ``group`` for vocab-parallel (TP-sharded) logits.
"""

from prime_megatron.kernels.logprob import token_logprobs, token_logprobs_and_entropy

__all__ = ["token_logprobs", "token_logprobs_and_entropy"]
