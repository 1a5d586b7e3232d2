"""Torch backend: row stats and logits gradient, chunked over tokens.

This is both the reference the Triton kernel is tested against and the run-time path on CPU.
Only ``CHUNK_ELEMS`` elements of tempered logits / softmax exist at a time (a few MB that stay
in cache), so memory beyond the gradient buffer is O(chunk) and each pass over a chunk is
cache-resident rather than a DRAM round trip. Formulas: ``softmax_stats`` module docstring.
"""

import torch
from torch import Tensor

from prime_megatron.kernels.softmax_stats import RowStats, compute_dtype

# ~4 MB of fp32 per chunk: cache-sized, yet several rows per op even at V=152k. Single-row
# chunks made every reduction an OpenMP barrier and ran 30x slower on a loaded 2-core machine.
CHUNK_ELEMS = 1 << 20


def _row_slices(logits: Tensor) -> list[slice]:
    rows = max(1, CHUNK_ELEMS // max(1, logits.shape[-1]))
    return [slice(i, i + rows) for i in range(0, logits.shape[0], rows)]


def _tempered(chunk: Tensor, inv_temp: float, copy: bool) -> Tensor:
    """Chunk of logits in the compute dtype, divided by the temperature; never aliases the
    caller's logits when ``copy`` or a temperature is set (they are then scaled in place)."""
    x = chunk.to(compute_dtype(chunk.dtype), copy=copy or inv_temp != 1.0)
    return x.mul_(inv_temp) if inv_temp != 1.0 else x


def _label_index(labels: Tensor, vocab: int) -> tuple[Tensor, Tensor]:
    """([N, 1] column of each label clamped into this shard, [N] label-is-in-this-shard)."""
    return labels.clamp(0, vocab - 1).unsqueeze(1), (labels >= 0) & (labels < vocab)


def local_stats(
    logits: Tensor,
    labels: Tensor,
    inv_temp: float,
    with_entropy: bool,
) -> RowStats:
    """Online-softmax state of each row of ``logits`` [N, V] (``labels`` [N]: ids in this shard)."""
    n = logits.shape[0]
    out = torch.zeros(4, n, dtype=compute_dtype(logits.dtype), device=logits.device)
    for sl in _row_slices(logits):
        # The forward never writes to x, so fp32 logits need no copy when T == 1.
        x = _tempered(logits[sl], inv_temp, copy=False)
        m = x.amax(dim=-1)
        centred = torch.sub(x, m.unsqueeze(1))
        e = centred.exp()
        out[0, sl] = m
        out[1, sl] = e.sum(dim=-1)
        if with_entropy:
            out[2, sl] = e.mul_(centred).sum(dim=-1)
        index, in_shard = _label_index(labels[sl], x.shape[-1])
        out[3, sl] = x.gather(1, index).squeeze(1) * in_shard
    return RowStats(out[0], out[1], out[2], out[3])


def _grad_chunk(
    x: Tensor, labels: Tensor, lse: Tensor, ent: Tensor, g_lp: Tensor, g_ent: Tensor | None
) -> Tensor:
    """dL/dx for one chunk; overwrites ``x`` (a private copy)."""
    logp = x.sub_(lse.unsqueeze(1))
    p = logp.exp()
    if g_ent is None:
        p.mul_(g_lp.unsqueeze(1))
    else:
        coef = logp.add_(ent.unsqueeze(1)).mul_(g_ent.unsqueeze(1)).add_(g_lp.unsqueeze(1))
        p.mul_(coef)
    index, in_shard = _label_index(labels, x.shape[-1])
    return p.neg_().scatter_add_(1, index, (g_lp * in_shard).unsqueeze(1))


def logits_grad(
    logits: Tensor,
    labels: Tensor,
    lse: Tensor,
    ent: Tensor,
    g_lp: Tensor,
    g_ent: Tensor | None,
    inv_temp: float,
) -> Tensor:
    """Gradient w.r.t. ``logits`` [N, V], recomputing the softmax chunk by chunk.

    ``lse``, ``ent``, ``g_lp``, ``g_ent`` are [N] in the compute dtype; ``g_ent`` None means the
    entropy output was unused. Returns a tensor of ``logits``' shape and dtype.
    """
    grad = torch.empty_like(logits)
    for sl in _row_slices(logits):
        x = _tempered(logits[sl], inv_temp, copy=True)
        g_ent_chunk = None if g_ent is None else g_ent[sl]
        gx = _grad_chunk(x, labels[sl], lse[sl], ent[sl], g_lp[sl], g_ent_chunk)
        grad[sl] = gx.mul_(inv_temp) if inv_temp != 1.0 else gx
    return grad


def naive_token_logprobs_and_entropy(
    logits: Tensor, labels: Tensor, temperature: float = 1.0, ignore_index: int = -100
) -> tuple[Tensor, Tensor]:
    """The textbook full-vocab version, the oracle for tests and the benchmark's baseline.

    Materialises several [..., V] fp32 tensors: never use it in training.
    """
    x = logits.to(compute_dtype(logits.dtype))
    logp_all = torch.log_softmax(x / temperature if temperature != 1.0 else x, dim=-1)
    valid = labels != ignore_index
    logp = logp_all.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp * valid, entropy * valid
