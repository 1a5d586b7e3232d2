"""Full tensor -> TP shard (starting from an HF dir in memory) is the exact inverse of the
weight sync's shard assembly, for every split dim and the gated linear_fc1's stride."""

from types import SimpleNamespace

import pytest
import torch

from prime_megatron.checkpoint.rules import MappingError
from prime_megatron.resharding.gather import assemble_shards
from prime_megatron.resharding.scatter import tp_shard


@pytest.mark.parametrize("shape, dim, stride", [((8, 6), 0, 1), ((8, 6), 1, 1), ((8, 6), 0, 2),
                                                ((4, 12), 1, 2), ((5,), -1, 1)])  # fmt: skip
@pytest.mark.parametrize("tp", [1, 2])
def test_shards_reassemble_to_the_full_tensor(shape, dim, stride, tp):
    full = torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape)
    shards = [tp_shard(full, dim, stride, tp, r) for r in range(tp)]
    if dim < 0 or tp == 1:
        assert all(s is full for s in shards)
        return
    entry = SimpleNamespace(partition_dim=dim, partition_stride=stride, shape=tuple(shape))
    assert torch.equal(assemble_shards(torch.stack(shards), entry), full)


def test_gated_fc1_shard_is_gate_and_up_of_its_rank():
    gate, up = torch.arange(4.0).reshape(4, 1), torch.arange(10.0, 14.0).reshape(4, 1)
    full = torch.cat([gate, up])  # [gate; up], as the mapping builds linear_fc1
    assert tp_shard(full, 0, 2, 2, 1).flatten().tolist() == [2, 3, 12, 13]


def test_a_dim_that_does_not_split_is_a_mapping_error():
    with pytest.raises(MappingError, match="does not split"):
        tp_shard(torch.zeros(6, 2), 0, 2, 2, 0)
