"""Process start-up: torch.distributed from torchrun's environment, Megatron groups, seeds.

Works the same under ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR set) and in a
plain ``python`` process (a world of one on a free local port). gloo on CPU, NCCL on GPU.
"""

from __future__ import annotations

import datetime
import os
import random
import socket
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from prime_megatron.distributed import cpu_platform


@dataclass(frozen=True)
class ParallelGroups:
    """The process groups one model layout uses; passed explicitly to whoever communicates."""

    tp: dist.ProcessGroup
    pp: dist.ProcessGroup
    dp: dist.ProcessGroup
    tp_size: int
    pp_size: int
    dp_size: int
    tp_rank: int
    pp_rank: int
    dp_rank: int
    # Megatron's own bundle of the same groups, for the Megatron modules that take one.
    megatron: object

    @property
    def is_first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def is_last_stage(self) -> bool:
        return self.pp_rank == self.pp_size - 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(timeout_minutes: int = 30) -> tuple[int, int]:
    """Initialise the default process group (idempotent); return (rank, world_size)."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        backend = "nccl"
    else:
        cpu_platform.enable()
        backend = "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return dist.get_rank(), dist.get_world_size()


def shutdown_distributed() -> None:
    """Tear down Megatron's groups and the default group in order. A process that exits
    with live gloo groups can abort in their destructors ("terminate called without an
    active exception", seen in CI), failing a run whose work had finished."""
    from megatron.core import parallel_state as mpu

    if not dist.is_initialized():
        return
    dist.barrier()
    if mpu.model_parallel_is_initialized():
        mpu.destroy_model_parallel()
    dist.destroy_process_group()


def initialize_parallel(tp: int = 1, pp: int = 1, vpp: int | None = None) -> ParallelGroups:
    """Build Megatron's TP/PP/DP groups for this world and return them as ``ParallelGroups``."""
    from megatron.core import parallel_state as mpu
    from megatron.core.process_groups_config import ProcessGroupCollection

    _, world = init_distributed()
    if world % (tp * pp) != 0:
        raise ValueError(
            f"world size {world} is not divisible by tensor_parallel={tp} x pipeline_parallel={pp}"
        )
    if mpu.model_parallel_is_initialized():
        mpu.destroy_model_parallel()
    mpu.initialize_model_parallel(
        tensor_model_parallel_size=tp,
        pipeline_model_parallel_size=pp,
        virtual_pipeline_model_parallel_size=vpp,
    )
    return ParallelGroups(
        tp=mpu.get_tensor_model_parallel_group(),
        pp=mpu.get_pipeline_model_parallel_group(),
        dp=mpu.get_data_parallel_group(),
        tp_size=tp,
        pp_size=pp,
        dp_size=world // (tp * pp),
        tp_rank=mpu.get_tensor_model_parallel_rank(),
        pp_rank=mpu.get_pipeline_model_parallel_rank(),
        dp_rank=mpu.get_data_parallel_rank(),
        megatron=ProcessGroupCollection.use_mpu_process_groups(),
    )


def seed_all(seed: int, parallel: ParallelGroups | None = None) -> None:
    """Seed python, numpy, torch and Megatron's tensor-parallel RNG streams."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if parallel is not None:
        from megatron.core import tensor_parallel

        tensor_parallel.model_parallel_cuda_manual_seed(seed, tp_rank=parallel.tp_rank)
