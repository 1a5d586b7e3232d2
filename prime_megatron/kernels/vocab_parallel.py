"""Vocab-parallel pieces: which vocab slice a rank holds and how row stats merge over ranks.

Logits sharded over the tensor-parallel group along the vocabulary (Megatron's
``ColumnParallelLinear`` output layer: equal contiguous slices, rank r holds
``[r * V_local, (r + 1) * V_local)``). The group is passed in explicitly; nothing here reads
Megatron's global parallel state. Two small all-reduces per call ([N] max, then [3, N] sums);
the backward needs no communication because every rank saves the global lse and entropy.
"""

import torch
import torch.distributed as dist
from torch import Tensor

from prime_megatron.kernels.softmax_stats import RowStats


def group_size(group: dist.ProcessGroup | None) -> int:
    """World size of ``group``; 1 when ``group`` is None (logits hold the whole vocabulary)."""
    return 1 if group is None else dist.get_world_size(group)


def vocab_start_index(vocab_local: int, group: dist.ProcessGroup | None) -> int:
    """First global vocab id held by this rank's shard of ``vocab_local`` columns."""
    return 0 if group is None else dist.get_rank(group) * vocab_local


def all_reduce_row_stats(stats: RowStats, group: dist.ProcessGroup | None) -> RowStats:
    """Merge per-shard online-softmax states into the full-vocab state on every rank."""
    if group_size(group) == 1:
        return stats
    global_max = stats.max.clone()
    dist.all_reduce(global_max, op=dist.ReduceOp.MAX, group=group)
    # Re-centre each shard's sums from its local max to the global max, then add the shards:
    # sum (x - M) e^(x - M) = e^(m - M) * (d + (m - M) * s) for local max m, global max M.
    shift = stats.max - global_max
    scale = torch.exp(shift)
    dotexp = scale * (stats.dotexp + shift * stats.sumexp)
    sums = torch.stack([stats.sumexp * scale, dotexp, stats.label_logit])
    dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=group)
    return RowStats(global_max, sums[0], sums[1], sums[2])


def local_labels(labels: Tensor, valid: Tensor, vocab_start: int) -> Tensor:
    """Global label ids -> ids within this shard; ignored rows get -1 (never in any shard)."""
    return torch.where(valid, labels - vocab_start, torch.full_like(labels, -1))
