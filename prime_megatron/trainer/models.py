"""The models a PRIME run trains and reads, as this rank holds them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from prime_megatron.trainer.optim import ShardedAdamW


@dataclass
class Models:
    """This rank's chunks of the models; those a run does not use are None."""

    policy: torch.nn.Module
    policy_opt: ShardedAdamW
    prm: torch.nn.Module | None = None
    prm_opt: ShardedAdamW | None = None
    ref: torch.nn.Module | None = None  # the policy's frozen start
    prm_ref: torch.nn.Module | None = None  # the PRM's frozen start, when it has its own

    def prm_reference(self, kind: str) -> torch.nn.Module:
        """The model the PRM's log-probs are measured against (``algo.prm_reference``): the
        sampling policy, or the frozen start the PRM began from."""
        if kind == "policy":
            return self.policy
        return self.prm_ref if self.prm_ref is not None else self.ref
