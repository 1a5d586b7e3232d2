"""What the log-prob benchmarks share: inputs, the measured step and the verdict.

Used by ``benchmarks/logprob.py`` (CPU, chunked torch path) and ``benchmarks/gpu_check.py``
(CUDA, Triton kernel), so both measure the same step against the same targets.
"""

from collections.abc import Callable, Iterable

import torch

from prime_megatron.kernels.reference import naive_token_logprobs_and_entropy

TARGET_MEMORY_RATIO = 1 / 8
TARGET_TIME_RATIO = 1.0

LogprobFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
NAIVE: LogprobFn = naive_token_logprobs_and_entropy


def make_inputs(
    tokens: int,
    vocab: int,
    device: str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    scale: float = 2.0,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """(logits [T, V], a leaf that requires grad; labels [T]; incoming fp32 gradients of the
    log-probs and the entropies, [T] each). Drawn on ``device`` so a GPU run does not pay for
    generating ~600M numbers on the host."""
    gen = torch.Generator(device=device).manual_seed(seed)
    logits = (torch.randn(tokens, vocab, generator=gen, device=device) * scale).to(dtype)
    labels = torch.randint(0, vocab, (tokens,), generator=gen, device=device)
    grads = tuple(torch.randn(tokens, generator=gen, device=device) for _ in range(2))
    return logits.requires_grad_(True), labels, grads


def fwd_bwd(
    fn: LogprobFn, logits: torch.Tensor, labels: torch.Tensor, grads: Iterable[torch.Tensor]
) -> None:
    """One training-shaped step: log-probs and entropy forward, both back-propagated."""
    logp, ent = fn(logits, labels)
    torch.autograd.backward([logp, ent], list(grads))


def verdict(naive: dict, ours: dict) -> dict:
    """Ratios of ``ours`` to ``naive`` (dicts with ``time_s`` and ``peak_extra_mb``) and
    whether they meet the targets."""
    mem_ratio = ours["peak_extra_mb"] / naive["peak_extra_mb"]
    time_ratio = ours["time_s"] / naive["time_s"]
    return {
        "memory_ratio": round(mem_ratio, 4),
        "time_ratio": round(time_ratio, 4),
        "meets_targets": mem_ratio <= TARGET_MEMORY_RATIO and time_ratio <= TARGET_TIME_RATIO,
    }
