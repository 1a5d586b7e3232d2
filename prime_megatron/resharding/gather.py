"""Gather -> convert -> bucket: full HF tensors, streamed bucket by bucket, on every rank.

For each bucket of the plan, the owning pipeline stage all-gathers the TP shards of each
tensor straight into one flat buffer, the buffer is broadcast over the pipeline group, and
every rank applies the mapping rules (HF names, q/k/v and gate/up split, vocab padding
dropped) to views of it. Each rank needs the *full* tensors because every rank feeds its own
in-process vLLM worker, which shards them for its rollout TP rank itself. Without
pipeline parallelism, tensors that need no TP gather skip the buffer and are converted
straight from the parameters (one pass over their bytes fewer per sync).

Extra memory per rank: the bucket buffer, plus one gathered tensor for TP layouts that
cannot be gathered in place (row-parallel and ``linear_fc1``), i.e. about one bucket plus
the largest tensor.

Shard-only entries (rollout TP == training TP, see ``plan.build_plan``) skip the gather:
the bucket carries this rank's shard, converted with the per-rank head counts, and each
HF tensor is handed over full-shaped with only this rank's slice written. vLLM's loader
reads exactly that slice; the rest of the tensor is never touched, so the OS never backs
it with memory when it is large (fresh mmap pages).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.models.arch import ModelArch
from prime_megatron.resharding.plan import PlanEntry, SyncPlan, build_plan, local_parameters

DEFAULT_BUCKET_BYTES = 64 * 2**20
# torch 2.13 renamed all_gather_into_tensor (same semantics, the old name warns).
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


@dataclass
class HFBucket:
    tensors: list[tuple[str, torch.Tensor]]  # HF name -> full tensor (views of the buffer)
    nbytes: int  # size of the flat buffer behind the views


def iter_hf_buckets(
    model,
    parallel: ParallelGroups,
    arch: ModelArch,
    bucket_bytes: int = DEFAULT_BUCKET_BYTES,
    plan: SyncPlan | None = None,
) -> Iterator[HFBucket]:
    """Collective: yield every bucket of full HF tensors, in plan order, on every rank.

    The tensors are views of the bucket's buffer or of the live parameters: copy them to
    keep them past the next iteration or an optimizer step, and never write to them. A
    plan with shard-only entries (built with a ``rollout_tp``) yields those as full-shaped
    tensors valid only in this rank's slice.
    """
    plan = plan or build_plan(model, parallel, arch, bucket_bytes)
    params = local_parameters(model)
    for bucket in plan.buckets:
        sources, nbytes = _bucket_sources(bucket, params, parallel)
        tensors = _to_hf(bucket, sources, arch, parallel)
        del sources  # shard-only conversions copied out of it: let it go before vLLM loads
        yield HFBucket(tensors, nbytes)


def iter_full_hf_tensors(
    model, parallel: ParallelGroups, arch: ModelArch, bucket_bytes: int = DEFAULT_BUCKET_BYTES
) -> Iterator[tuple[str, torch.Tensor]]:
    """Collective: ``(hf_name, full tensor)`` for the whole model, yielded on EVERY rank.

    Every rank of the world receives every tensor (TP all-gather on the owning stage, then a
    broadcast over the pipeline group); DP replicas hold identical weights and gather their
    own. Tensors are views valid until the iteration moves past their bucket.
    """
    for bucket in iter_hf_buckets(model, parallel, arch, bucket_bytes):
        yield from bucket.tensors


def _bucket_sources(
    bucket: Sequence[PlanEntry], params: dict[str, torch.Tensor], parallel: ParallelGroups
) -> tuple[list[torch.Tensor], int]:
    """Per entry, what to convert (``buffer_shape``), and the bytes staged for it.

    Without pipeline parallelism an entry that needs no TP gather (a shard-only entry, a
    replicated tensor, or anything at TP=1) is converted straight from this rank's
    parameter: copying it into a buffer first would only add a pass over its bytes. The
    rest goes through one flat buffer, identical on every rank of the PP group.
    """
    direct = [parallel.pp_size == 1 and _needs_no_gather(e, parallel) for e in bucket]
    staged = [e for e, d in zip(bucket, direct, strict=True) if not d]
    flat = _fill_bucket(staged, params, parallel) if staged else None
    sources, offset = [], 0
    for entry, is_direct in zip(bucket, direct, strict=True):
        if is_direct:
            sources.append(params[entry.name].detach())
            continue
        sources.append(flat[offset : offset + entry.buffer_numel].view(entry.buffer_shape))
        offset += entry.buffer_numel
    return sources, 0 if flat is None else flat.numel() * flat.element_size()


def _needs_no_gather(entry: PlanEntry, parallel: ParallelGroups) -> bool:
    return entry.shard_only or entry.partition_dim < 0 or parallel.tp_size == 1


def _fill_bucket(
    bucket: Sequence[PlanEntry], params: dict[str, torch.Tensor], parallel: ParallelGroups
) -> torch.Tensor:
    """Flat buffer with the bucket's full tensors, identical on every rank of the PP group."""
    owner = bucket[0].owner
    device = next(iter(params.values())).device  # NCCL needs the buffers on the GPU
    flat = torch.empty(sum(e.buffer_numel for e in bucket), dtype=bucket[0].dtype, device=device)
    if parallel.pp_rank == owner:
        offset = 0
        with torch.no_grad():
            for entry in bucket:
                out = flat[offset : offset + entry.buffer_numel]
                if entry.shard_only:
                    out.view(entry.buffer_shape).copy_(params[entry.name])
                else:
                    gather_tp(params[entry.name].detach(), entry, out, parallel)
                offset += entry.buffer_numel
    if parallel.pp_size > 1:
        dist.broadcast(flat, src=dist.get_global_rank(parallel.pp, owner), group=parallel.pp)
    return flat


def gather_tp(local: torch.Tensor, entry: PlanEntry, out: torch.Tensor, parallel: ParallelGroups):
    """Write the full tensor of ``entry`` into ``out`` (flat, ``entry.numel``) from TP shards.

    Column-parallel shards (dim 0) concatenate in rank order, row-parallel shards (dim 1)
    along columns. A shard with stride s holds s sub-blocks: the gated ``linear_fc1`` shard
    is [gate_r; up_r], so the full tensor is [gate_0 .. gate_t-1; up_0 .. up_t-1].
    """
    tp = parallel.tp_size
    if entry.partition_dim < 0 or tp == 1:
        out.view(entry.shape).copy_(local)
        return
    local = local.contiguous()
    if entry.partition_dim == 0 and entry.partition_stride == 1:
        # Rank-ordered concatenation along dim 0 is the flat layout itself: gather in place.
        _all_gather_single(out.view(tp * local.shape[0], *local.shape[1:]), local,
                                    group=parallel.tp)  # fmt: skip
        return
    # gloo wants the concatenated [tp * n, ...] shape; the [tp, *shard] view is the same memory.
    parts = local.new_empty((tp * local.shape[0], *local.shape[1:]))
    _all_gather_single(parts, local, group=parallel.tp)
    out.view(entry.shape).copy_(assemble_shards(parts.view(tp, *local.shape), entry))


def assemble_shards(parts: torch.Tensor, entry: PlanEntry) -> torch.Tensor:
    """[tp, *shard] stacked shards -> the full tensor ``entry.shape`` (a view or a copy)."""
    dim, stride = entry.partition_dim, entry.partition_stride
    shard = parts.shape[1:]
    # [tp, ..., stride, n/stride, ...] -> [..., stride, tp, n/stride, ...] -> full
    blocks = parts.view(parts.shape[0], *shard[:dim], stride, shard[dim] // stride,
                        *shard[dim + 1 :])  # fmt: skip
    return blocks.movedim(0, dim + 1).reshape(entry.shape)


def _to_hf(
    bucket: Sequence[PlanEntry],
    sources: Sequence[torch.Tensor],
    arch: ModelArch,
    parallel: ParallelGroups,
) -> list[tuple[str, torch.Tensor]]:
    out: list[tuple[str, torch.Tensor]] = []
    for entry, data in zip(bucket, sources, strict=True):
        if entry.shard_only:
            out.extend(_shard_to_hf(entry, data, arch, parallel.tp_rank))
        else:
            out.extend(entry.rule.to_hf(data, arch).items())
    return out


def _shard_to_hf(
    entry: PlanEntry, shard: torch.Tensor, arch: ModelArch, tp_rank: int
) -> Iterator[tuple[str, torch.Tensor]]:
    """This rank's shard -> full-shaped HF tensors with only this rank's slice written."""
    tp = entry.shard_of
    # A QKV shard holds whole KV groups: it converts like a model with 1/tp of the heads.
    local_arch = replace(arch, num_attention_heads=arch.num_attention_heads // tp,
                         num_query_groups=arch.num_query_groups // tp)  # fmt: skip
    # q/k/v and gate/up pieces split their rows; copy rules keep Megatron's split dim.
    dim = 0 if entry.rule.kind in ("qkv", "gate_up") else entry.partition_dim
    for name, piece in entry.rule.to_hf(shard, local_arch).items():
        yield name, full_shaped(piece, dim, tp, tp_rank)


def full_shaped(piece: torch.Tensor, dim: int, tp: int, rank: int) -> torch.Tensor:
    """A tensor of ``piece``'s shape with ``dim`` x ``tp`` whose slice ``rank`` equals
    ``piece``; every other element is unspecified (vLLM never reads it).

    Along the last dim the rows overlap in memory (row stride = the piece's width), so only
    ``piece.numel() + (tp - 1) * width`` elements are allocated; along another dim the full
    size is allocated and only the slice is written (untouched pages cost no memory).
    """
    n = piece.shape[dim]
    shape = (*piece.shape[:dim], n * tp, *piece.shape[dim + 1 :])
    if dim == piece.dim() - 1:
        storage = piece.new_empty(piece.numel() + (tp - 1) * n)
        strides = (*piece.contiguous().stride()[:-1], 1)
        view = storage.as_strided(shape, strides)
    else:
        view = piece.new_empty(shape)
    view.narrow(dim, rank * n, n).copy_(piece)
    return view
