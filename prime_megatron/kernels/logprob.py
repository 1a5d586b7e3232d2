"""Public entry points: per-token log-prob of the label and entropy, forward and backward.

One autograd Function drives every backend (torch reference, Triton) and the vocab-parallel
case: the backend reduces its logits (full vocab or this rank's shard) to row stats, the
stats are merged over the tensor-parallel group, and backward asks the backend for the logits
gradient given the saved lse and entropy. Nothing the size of the full-vocab softmax is kept.
"""

from types import ModuleType

import torch
import torch.distributed as dist
from torch import Tensor

from prime_megatron.kernels import reference
from prime_megatron.kernels.softmax_stats import finalize
from prime_megatron.kernels.vocab_parallel import (
    all_reduce_row_stats,
    local_labels,
    vocab_start_index,
)

BACKENDS = ("auto", "torch", "triton")


class _TokenLogprobEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, inv_temp, ignore_index, group, backend, with_entropy):
        valid = labels != ignore_index
        shard_labels = local_labels(labels, valid, vocab_start_index(logits.shape[-1], group))
        stats = backend.local_stats(logits, shard_labels, inv_temp, with_entropy)
        lse, logp, ent = finalize(all_reduce_row_stats(stats, group), valid, with_entropy)
        ctx.save_for_backward(logits, shard_labels, valid, lse, ent)
        ctx.inv_temp, ctx.backend, ctx.with_entropy = inv_temp, backend, with_entropy
        # Unused outputs then arrive as None and backward skips their terms.
        ctx.set_materialize_grads(False)
        if not with_entropy:
            ctx.mark_non_differentiable(ent)
        return logp, ent

    @staticmethod
    def backward(ctx, g_lp, g_ent):
        logits, shard_labels, valid, lse, ent = ctx.saved_tensors
        if g_lp is None and g_ent is None:
            return (None,) * 7
        # Ignored rows get exactly zero gradient, whatever flows in.
        g_lp = torch.zeros_like(lse) if g_lp is None else g_lp.to(lse.dtype) * valid
        use_ent = g_ent is not None and ctx.with_entropy
        g_ent = g_ent.to(lse.dtype) * valid if use_ent else None
        grad = ctx.backend.logits_grad(logits, shard_labels, lse, ent, g_lp, g_ent, ctx.inv_temp)
        return grad, None, None, None, None, None, None


def _backend_module(name: str, logits: Tensor) -> ModuleType:
    if name not in BACKENDS:
        raise ValueError(f"backend={name!r} is invalid: one of {BACKENDS}")
    if name == "triton" or (name == "auto" and logits.is_cuda):
        from prime_megatron.kernels import triton_logprob

        return triton_logprob
    return reference


def _check_inputs(logits: Tensor, labels: Tensor, temperature: float, ignore_index: int) -> None:
    if logits.dim() < 1 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} must equal logits shape without the vocab dim "
            f"{tuple(logits.shape[:-1])}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} is invalid: must be > 0")
    if ignore_index >= 0:
        raise ValueError(f"ignore_index={ignore_index} is invalid: must be negative")


def _run(logits, labels, temperature, ignore_index, group, backend, with_entropy):
    _check_inputs(logits, labels, temperature, ignore_index)
    flat_logits = logits.reshape(-1, logits.shape[-1])
    if flat_logits.stride(-1) != 1:
        flat_logits = flat_logits.contiguous()
    logp, ent = _TokenLogprobEntropy.apply(
        flat_logits, labels.reshape(-1).long(), 1.0 / temperature, ignore_index, group,
        _backend_module(backend, logits), with_entropy,
    )  # fmt: skip
    return logp.view(labels.shape), ent.view(labels.shape)


def token_logprobs_and_entropy(
    logits: Tensor,
    labels: Tensor,
    temperature: float = 1.0,
    ignore_index: int = -100,
    group: dist.ProcessGroup | None = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """log softmax(logits / T)[label] and the entropy of softmax(logits / T), per token.

    Args:
        logits: [..., V] (any float dtype; fp32 accumulation), or with ``group`` this rank's
            contiguous vocab shard [..., V / tp] of the tensor-parallel output layer.
        labels: [...] global token ids; ``ignore_index`` (negative) marks padded rows, which
            give 0 and receive zero gradient. Logits must be finite.
        temperature: the sampler's temperature; logits are divided by it before everything, so
            the log-probs are those of the distribution the sampler drew from.
        group: tensor-parallel group the vocab is sharded over (None: full vocab here).
        backend: "auto" (Triton on CUDA, torch chunked reference otherwise), "torch", "triton".

    Returns:
        (log-probs, entropy), each [...] in fp32 (float64 for float64 logits), differentiable
        w.r.t. ``logits``. Identical on every rank of ``group``.
    """
    return _run(logits, labels, temperature, ignore_index, group, backend, with_entropy=True)


def token_logprobs(
    logits: Tensor,
    labels: Tensor,
    temperature: float = 1.0,
    ignore_index: int = -100,
    group: dist.ProcessGroup | None = None,
    backend: str = "auto",
) -> Tensor:
    """Like ``token_logprobs_and_entropy`` but skips the entropy work (reference / PRM passes)."""
    return _run(logits, labels, temperature, ignore_index, group, backend, with_entropy=False)[0]
