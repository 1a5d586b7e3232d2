"""Full tensors -> this rank's shards: the inverse of the gather, for starting a model from
full (TP-gathered, all-stage) Megatron tensors held in memory, e.g. a mapped HF checkpoint.

Each rank takes, for each parameter of its pipeline stage(s), its tensor-parallel slice
along the dim Megatron splits (``plan.tp_partition``), honouring the stride of a gated
``linear_fc1`` (full [gate; up] -> shard r = [gate_r; up_r]). No communication.
"""

from __future__ import annotations

import torch

from prime_megatron.checkpoint.rules import MappingError
from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.resharding.plan import local_parameters, tp_partition


def tp_shard(full: torch.Tensor, dim: int, stride: int, tp: int, rank: int) -> torch.Tensor:
    """TP rank ``rank``'s shard of ``full`` (a view); ``dim`` < 0: replicated, all of it.

    Inverse of ``gather.assemble_shards``: the split dim holds ``stride`` blocks, each cut
    into ``tp`` pieces, and a shard is piece ``rank`` of every block.
    """
    if dim < 0 or tp == 1:
        return full
    n = full.shape[dim]
    if n % (stride * tp):
        raise MappingError(f"dim {dim} of size {n} does not split into {stride} x {tp} pieces")
    blocks = full.view(*full.shape[:dim], stride, tp, n // (stride * tp), *full.shape[dim + 1 :])
    return blocks.select(dim + 1, rank).reshape(*full.shape[:dim], n // tp, *full.shape[dim + 1 :])


def load_full_tensors(model, full: dict[str, torch.Tensor], parallel: ParallelGroups) -> None:
    """Fill this rank's parameters (any TP/PP layout) from the full model's tensors, by
    full-model name; ``MappingError`` if one is missing or its shard has the wrong shape."""
    params = local_parameters(model)
    missing = sorted(set(params) - set(full))
    if missing:
        raise MappingError(f"no tensor for parameter(s) {missing[:6]}")
    with torch.no_grad():
        for name, param in params.items():
            dim, stride = tp_partition(param)
            shard = tp_shard(full[name], dim, stride, parallel.tp_size, parallel.tp_rank)
            if shard.shape != param.shape:
                raise MappingError(
                    f"{name}: shard of shape {tuple(shard.shape)} for a parameter of shape "
                    f"{tuple(param.shape)}"
                )
            param.copy_(shard)
