"""Row statistics shared by every log-prob backend, and how they become log-probs and entropy.

All backends (torch reference, Triton) reduce each row of tempered logits ``x = logits / T``
over their (shard of the) vocabulary to four numbers, the online-softmax state::

    m = max_j x_j                     s = sum_j exp(x_j - m)
    d = sum_j (x_j - m) exp(x_j - m)  xl = x_label (0 when the label is not in this shard)

Shards combine exactly (``vocab_parallel.all_reduce_row_stats``); then

    lse = m + log s,   log p(label) = xl - lse,   H = log s - d / s.

``d`` is centred on the max so the entropy does not come from cancelling two numbers of the
logits' magnitude (lse - E[x] loses ~1e-5 in fp32 for logits ~30; this form does not).

The gradient the backends apply, with ``g`` and ``h`` the incoming grads of log p(label) and
H, and ``log p_j = x_j - lse``::

    dL/dx_j = g * [j == label] - p_j * (g + h * (log p_j + H)),   dL/dlogits = dL/dx / T.
"""

from typing import NamedTuple

import torch
from torch import Tensor


class RowStats(NamedTuple):
    """Online-softmax state per row, each [N] in the compute dtype (see module docstring)."""

    max: Tensor
    sumexp: Tensor
    dotexp: Tensor
    label_logit: Tensor


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 accumulation for 16-bit inputs; float64 stays float64 (for gradcheck)."""
    return torch.promote_types(dtype, torch.float32)


def finalize(stats: RowStats, valid: Tensor, with_entropy: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Full-vocab row stats -> (lse, log p(label), entropy), each [N]; invalid rows give 0."""
    lse = stats.max + stats.sumexp.log()
    zero = torch.zeros((), dtype=lse.dtype, device=lse.device)
    logp = torch.where(valid, stats.label_logit - lse, zero)
    if not with_entropy:
        return lse, logp, torch.zeros_like(logp)
    entropy = torch.where(valid, stats.sumexp.log() - stats.dotexp / stats.sumexp, zero)
    return lse, logp, entropy
