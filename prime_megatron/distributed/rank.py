"""Who this process is: rank 0 (the one that writes and prints) and its compute device."""

from __future__ import annotations

import torch
import torch.distributed as dist

from prime_megatron.console import say


def is_rank0() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def log0(message: str) -> None:
    if is_rank0():
        say(message)


def compute_device() -> torch.device:
    """Where this rank's models compute: its current GPU, else the host."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
