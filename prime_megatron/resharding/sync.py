"""Push the trainer's current policy weights into the colocated vLLM engines (in memory)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.models.arch import ModelArch
from prime_megatron.resharding.gather import iter_hf_buckets
from prime_megatron.resharding.memory import release_free_memory
from prime_megatron.resharding.plan import SyncPlan, build_plan


def sync_weights(
    model, parallel: ParallelGroups, arch: ModelArch, engine, bucket_bytes: int
) -> dict[str, float | int]:
    """Collective over the whole world: plan -> gather -> convert -> bucket -> push.

    ``engine`` is a ``RolloutEngine`` (anything with ``load_weights(iterable of (hf_name,
    tensor))`` and ``finish_weight_update() -> version``). vLLM consumes one lazy stream:
    each bucket is gathered when vLLM asks for its first tensor and freed once vLLM moved
    past it, so each rank holds about one bucket (plus one gathered tensor) at a time.
    Afterwards the prefix cache is reset and the weight version bumped.

    Returns stats: ``seconds`` (total), ``gather_seconds`` (plan, gather, convert),
    ``push_seconds`` (vLLM loading), ``bytes`` (full tensors, vocab padding included),
    ``n_buckets``, ``peak_bucket_bytes`` and the new ``weight_version``.
    """
    start = time.perf_counter()
    rollout_tp = getattr(getattr(engine, "cfg", None), "tensor_parallel_size", None)
    plan = build_plan(model, parallel, arch, bucket_bytes, rollout_tp=rollout_tp)
    stream = _BucketStream(model, parallel, arch, plan)
    engine.load_weights(iter(stream))
    version = engine.finish_weight_update()
    if not torch.cuda.is_available():
        release_free_memory()  # host buckets: keep RSS flat over many syncs
    total = time.perf_counter() - start
    gather = stream.seconds + (stream.started - start)
    return {
        "seconds": total,
        "gather_seconds": gather,
        "push_seconds": total - gather,
        "bytes": plan.total_bytes,
        "n_buckets": stream.n_buckets,
        "peak_bucket_bytes": stream.peak_bytes,
        "weight_version": version,
    }


class _BucketStream:
    """Iterable of (hf_name, tensor) over all buckets, timing the gather side."""

    def __init__(self, model, parallel: ParallelGroups, arch: ModelArch, plan: SyncPlan) -> None:
        self.buckets = iter_hf_buckets(model, parallel, arch, plan=plan)
        self.started = time.perf_counter()
        self.seconds = 0.0
        self.n_buckets = 0
        self.peak_bytes = 0

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        while True:
            t = time.perf_counter()
            bucket = next(self.buckets, None)
            self.seconds += time.perf_counter() - t
            if bucket is None:
                return
            self.n_buckets += 1
            self.peak_bytes = max(self.peak_bytes, bucket.nbytes)
            tensors, bucket = bucket.tensors, None
            while tensors:  # hand tensors over one by one, keeping no reference behind
                yield tensors.pop(0)
