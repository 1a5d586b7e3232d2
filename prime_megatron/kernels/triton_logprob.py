"""Triton backend: one program per token row, online softmax over vocab blocks.

Same contract as ``reference`` (``local_stats`` / ``logits_grad``) and the same formulas
(``softmax_stats`` module docstring). Compiled on GPU; runs on CPU tensors only under
``TRITON_INTERPRET=1`` (tests), which must be set before this module is imported.
Loads are cast to fp32, row offsets are int64 (T * V overflows int32 at Qwen vocab sizes),
and padded lanes load -inf for the max / sum-exp but contribute 0 to ``sum (x - m) exp(x - m)``
(-inf * 0 would be nan).
"""

import triton
import triton.language as tl
from torch import Tensor

from prime_megatron.kernels.softmax_stats import RowStats, compute_dtype

MAX_BLOCK_V = 4096


@triton.jit
def _row_stats_kernel(
    logits_ptr,
    row_stride,
    labels_ptr,
    out_ptr,
    n_rows,
    vocab,
    inv_temp,
    WITH_ENTROPY: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * row_stride
    m = tl.full((), float("-inf"), tl.float32)
    s = tl.zeros((), tl.float32)
    d = tl.zeros((), tl.float32)
    for start in range(0, vocab, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        lanes = cols < vocab
        x = tl.load(row_ptr + cols, mask=lanes, other=float("-inf")).to(tl.float32) * inv_temp
        m_new = tl.maximum(m, tl.max(x, axis=0))
        rescale = tl.exp(m - m_new)
        e = tl.exp(x - m_new)
        if WITH_ENTROPY:
            # Re-centre d on the new max; where() keeps -inf * 0 (first block) out of it.
            d = rescale * (d + tl.where(s > 0, m - m_new, 0.0) * s)
            d += tl.sum(tl.where(lanes, x - m_new, 0.0) * e, axis=0)
        s = s * rescale + tl.sum(e, axis=0)
        m = m_new
    label = tl.load(labels_ptr + row)
    in_shard = (label >= 0) & (label < vocab)
    xl = tl.load(row_ptr + label, mask=in_shard, other=0.0).to(tl.float32) * inv_temp
    tl.store(out_ptr + row, m)
    tl.store(out_ptr + n_rows + row, s)
    tl.store(out_ptr + 2 * n_rows + row, d)
    tl.store(out_ptr + 3 * n_rows + row, xl)


@triton.jit
def _logits_grad_kernel(
    logits_ptr,
    row_stride,
    grad_ptr,
    grad_row_stride,
    labels_ptr,
    lse_ptr,
    ent_ptr,
    g_lp_ptr,
    g_ent_ptr,
    vocab,
    inv_temp,
    WITH_ENTROPY: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * row_stride
    grad_row_ptr = grad_ptr + row * grad_row_stride
    label = tl.load(labels_ptr + row)
    lse = tl.load(lse_ptr + row)
    g_lp = tl.load(g_lp_ptr + row)
    for start in range(0, vocab, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        lanes = cols < vocab
        x = tl.load(row_ptr + cols, mask=lanes, other=0.0).to(tl.float32) * inv_temp
        logp = x - lse
        coef = g_lp
        if WITH_ENTROPY:
            coef = g_lp + tl.load(g_ent_ptr + row) * (logp + tl.load(ent_ptr + row))
        g = tl.where(cols == label, g_lp, 0.0) - tl.exp(logp) * coef
        tl.store(grad_row_ptr + cols, (g * inv_temp).to(grad_ptr.dtype.element_ty), mask=lanes)


def _block_v(vocab: int, block_v: int | None) -> int:
    return block_v or min(MAX_BLOCK_V, triton.next_power_of_2(vocab))


def local_stats(
    logits: Tensor, labels: Tensor, inv_temp: float, with_entropy: bool, block_v: int | None = None
) -> RowStats:
    """Online-softmax state of each row of ``logits`` [N, V] (``labels`` [N]: ids in this shard)."""
    n, vocab = logits.shape
    assert logits.stride(1) == 1, "vocab dim must be contiguous"
    out = logits.new_empty((4, n), dtype=compute_dtype(logits.dtype))
    _row_stats_kernel[(n,)](
        logits, logits.stride(0), labels, out, n, vocab, inv_temp,
        WITH_ENTROPY=with_entropy, BLOCK_V=_block_v(vocab, block_v),
    )  # fmt: skip
    return RowStats(out[0], out[1], out[2], out[3])


def logits_grad(
    logits: Tensor,
    labels: Tensor,
    lse: Tensor,
    ent: Tensor,
    g_lp: Tensor,
    g_ent: Tensor | None,
    inv_temp: float,
    block_v: int | None = None,
) -> Tensor:
    """Gradient w.r.t. ``logits`` [N, V]; ``g_ent`` None means the entropy output was unused."""
    n, vocab = logits.shape
    grad = logits.new_empty(logits.shape)
    with_entropy = g_ent is not None
    _logits_grad_kernel[(n,)](
        logits, logits.stride(0), grad, grad.stride(0), labels,
        lse.contiguous(), ent.contiguous(), g_lp.contiguous(),
        g_ent.contiguous() if with_entropy else g_lp, vocab, inv_temp,
        WITH_ENTROPY=with_entropy, BLOCK_V=_block_v(vocab, block_v),
    )  # fmt: skip
    return grad
