"""Plan a weight sync: which full tensors exist, which pipeline stage owns each, and buckets.

Every rank gets the same plan (one ``all_gather_object`` over the pipeline group of each
stage's parameter names, shapes and TP split dims). Entries follow the architecture's
mapping rules (``checkpoint/mapping.py``), so the order is embedding, layers 0..N-1, final
norm, output layer, whatever the TP/PP/VPP layout.

Buckets never split a Megatron module (its weight and bias go together): vLLM rebuilds
each of its layers from what one reload call gave it, and its layers map one-to-one to
Megatron modules (``linear_qkv`` -> ``qkv_proj``, ``linear_fc1`` -> ``gate_up_proj``...).
A bucket also holds one owner stage and one dtype, so it travels as one flat buffer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from math import prod

import torch
import torch.distributed as dist

from prime_megatron.checkpoint.mapping import rules_for
from prime_megatron.checkpoint.rules import MappingError, Rule
from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.models.arch import ModelArch
from prime_megatron.models.builder import layer_spec_kind

_LOCAL_LAYER = re.compile(r"^decoder\.layers\.(\d+)\.")


@dataclass(frozen=True)
class PlanEntry:
    rule: Rule
    owner: int  # pipeline rank holding the parameter
    shape: tuple[int, ...]  # full shape: TP shards gathered, vocab still padded
    dtype: torch.dtype
    partition_dim: int  # dimension Megatron splits over TP; -1 if replicated
    # Sub-blocks per shard: 2 for a gated linear_fc1, whose shard r is [gate_r; up_r].
    partition_stride: int = 1
    # TP size whose shards the bucket carries instead of the full tensor ("shard-only"
    # entries, see ``build_plan``); 1 = the bucket carries the full tensor.
    shard_of: int = 1

    @property
    def name(self) -> str:
        return self.rule.megatron

    @property
    def module(self) -> str:
        return self.name.rsplit(".", 1)[0]

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    @property
    def shard_only(self) -> bool:
        return self.shard_of > 1

    @property
    def buffer_shape(self) -> tuple[int, ...]:
        """What this entry occupies in a bucket: this rank's shard or the full tensor."""
        if not self.shard_only:
            return self.shape
        d = self.partition_dim
        return (*self.shape[:d], self.shape[d] // self.shard_of, *self.shape[d + 1 :])

    @property
    def buffer_numel(self) -> int:
        return self.numel // self.shard_of

    @property
    def buffer_nbytes(self) -> int:
        return self.buffer_numel * self.dtype.itemsize


@dataclass(frozen=True)
class SyncPlan:
    entries: tuple[PlanEntry, ...]
    buckets: tuple[tuple[PlanEntry, ...], ...]

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries)


def model_chunks(model) -> list[torch.nn.Module]:
    """The bare ``GPTModel`` chunks of a model, a VPP list of chunks, or DDP-wrapped ones."""
    from megatron.core.utils import unwrap_model

    return unwrap_model(list(model) if isinstance(model, (list, tuple)) else [model])


def local_parameters(model) -> dict[str, torch.nn.Parameter]:
    """This rank's parameters under their full-model names (global layer indices)."""
    params: dict[str, torch.nn.Parameter] = {}
    for chunk in model_chunks(model):
        layers = chunk.decoder.layers  # layer_number is global and 1-based (PP/VPP offset)
        for name, param in chunk.named_parameters():
            m = _LOCAL_LAYER.match(name)
            if m:
                global_index = layers[int(m.group(1))].layer_number - 1
                name = f"decoder.layers.{global_index}.{name[m.end() :]}"
            params[name] = param
    return params


def build_plan(
    model,
    parallel: ParallelGroups,
    arch: ModelArch,
    bucket_bytes: int,
    spec_kind: str | None = None,
    rollout_tp: int | None = None,
) -> SyncPlan:
    """Collective (whole world when ``rollout_tp`` is given): the sync plan, same everywhere.

    With ``rollout_tp`` equal to the training TP size (and vLLM's TP ranks equal to
    Megatron's, which torchrun's rank order gives), tensors split over attention heads or
    FFN columns are planned "shard-only": vLLM's TP rank r loads exactly Megatron's TP
    shard r of them, so each rank keeps its own shard and no TP all-gather is needed.
    Vocab tensors are always gathered: vLLM pads and splits the vocab differently.
    """
    rules = rules_for(arch, spec_kind or layer_spec_kind())
    wanted = {r.megatron for r in rules}
    # Tied models keep a copy of the embedding as the last stage's output_layer.weight;
    # it is not in the rules, so it is skipped here.
    mine = {
        name: (tuple(p.shape), p.dtype, *tp_partition(p))
        for name, p in local_parameters(model).items()
        if name in wanted
    }
    per_stage: list[dict] = [{} for _ in range(parallel.pp_size)]
    dist.all_gather_object(per_stage, mine, group=parallel.pp)
    shard_of = parallel.tp_size if _tp_ranks_match(parallel, rollout_tp) else 1
    entries = tuple(_entry(rule, per_stage, parallel.tp_size, shard_of) for rule in rules)
    return SyncPlan(entries, tuple(make_buckets(entries, bucket_bytes)))


def _tp_ranks_match(parallel: ParallelGroups, rollout_tp: int | None) -> bool:
    """Collective: is vLLM's TP rank (rank % rollout_tp) Megatron's TP rank on every rank?"""
    if rollout_tp is None or rollout_tp != parallel.tp_size or parallel.tp_size == 1:
        return False
    ok = torch.tensor(int(dist.get_rank() % rollout_tp == parallel.tp_rank))
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok)


def tp_partition(param: torch.Tensor) -> tuple[int, int]:
    """(TP split dim or -1, stride), from the attributes Megatron puts on sharded weights."""
    if getattr(param, "tensor_model_parallel", False):
        return param.partition_dim, getattr(param, "partition_stride", 1)
    return -1, 1


def _entry(rule: Rule, per_stage: Sequence[dict], tp: int, shard_of: int) -> PlanEntry:
    owners = [s for s, names in enumerate(per_stage) if rule.megatron in names]
    if len(owners) != 1:
        raise MappingError(
            f"weight sync: {rule.megatron} is held by pipeline stages {owners}; "
            "expected exactly one (model and architecture mapping disagree)"
        )
    shape, dtype, dim, stride = per_stage[owners[0]][rule.megatron]
    full = tuple(n * tp if d == dim else n for d, n in enumerate(shape))
    shard_only = dim >= 0 and rule.kind != "vocab"
    return PlanEntry(rule, owners[0], full, dtype, dim, stride, shard_of if shard_only else 1)


def make_buckets(entries: Sequence[PlanEntry], bucket_bytes: int) -> Iterator[tuple]:
    """Pack whole modules, in order, into buckets of at most ``bucket_bytes``.

    A module larger than ``bucket_bytes`` travels alone; owner or dtype changes close a
    bucket (one flat buffer, one broadcast source).
    """
    bucket: list[PlanEntry] = []
    size = 0
    for _, unit_iter in groupby(entries, key=lambda e: e.module):
        unit = list(unit_iter)
        unit_bytes = sum(e.buffer_nbytes for e in unit)
        if bucket and (
            size + unit_bytes > bucket_bytes
            or (unit[0].owner, unit[0].dtype) != (bucket[0].owner, bucket[0].dtype)
        ):
            yield tuple(bucket)
            bucket, size = [], 0
        _check_unit(unit)
        bucket += unit
        size += unit_bytes
    if bucket:
        yield tuple(bucket)


def _check_unit(unit: list[PlanEntry]) -> None:
    if len({(e.owner, e.dtype) for e in unit}) != 1:
        raise MappingError(f"weight sync: module {unit[0].module} mixes owners or dtypes")
