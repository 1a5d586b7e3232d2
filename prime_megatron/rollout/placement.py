"""Where rollouts run: rollout replicas over the torchrun world.

vLLM's ``external_launcher`` mode lays the torchrun world out as
``[replica, tensor_parallel]``: ranks ``r * tp .. r * tp + tp - 1`` form rollout replica
``r`` (vLLM calls it "external data parallel"). The replicas are independent engines; each
generates a contiguous share of the prompts, and the shares are all-gathered afterwards.
Multi-node runs keep a replica inside a node as long as ``tp`` divides the ranks per node
(torchrun numbers ranks node by node).
"""

from __future__ import annotations

from dataclasses import dataclass

from prime_megatron.distributed.split import split_even


@dataclass(frozen=True)
class RolloutPlacement:
    world_size: int
    rank: int
    tp_size: int

    @property
    def replicas(self) -> int:
        return self.world_size // self.tp_size

    @property
    def replica(self) -> int:
        return self.rank // self.tp_size

    @property
    def tp_rank(self) -> int:
        return self.rank % self.tp_size

    def prompt_range(self, n_prompts: int) -> range:
        """This replica's contiguous share of ``n_prompts`` (sizes differ by at most one)."""
        return range(n_prompts)[split_even(n_prompts, self.replicas)[self.replica]]
