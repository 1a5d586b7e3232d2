"""The models a PRIME run trains and reads, as this rank holds them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from prime_megatron.trainer.optim import ShardedAdamW


@dataclass
class Models:
    """This rank's chunks of the three models; ``prm``/``ref`` are None when unused."""

    policy: torch.nn.Module
    policy_opt: ShardedAdamW
    prm: torch.nn.Module | None = None
    prm_opt: ShardedAdamW | None = None
    ref: torch.nn.Module | None = None
