"""Pure pieces of the rollout / resharding layer (no torchrun, no vLLM engine)."""

import math

import pytest
import torch

from prime_megatron.checkpoint.rules import Rule
from prime_megatron.config import ConfigError
from prime_megatron.resharding.gather import assemble_shards, full_shaped
from prime_megatron.resharding.plan import PlanEntry, make_buckets
from prime_megatron.resharding.verify import logprob_mismatch
from prime_megatron.rollout import RolloutBatch, RolloutConfig
from prime_megatron.rollout.placement import RolloutPlacement


@pytest.mark.parametrize("n, parts", [(5, 2), (5, 4), (2, 4), (8, 4), (0, 3)])
def test_prompt_ranges_cover_prompts_in_order(n, parts):
    shards = [RolloutPlacement(parts, replica, 1).prompt_range(n) for replica in range(parts)]
    assert [i for s in shards for i in s] == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_placement_follows_vllm_external_launcher_layout():
    ranks = [RolloutPlacement(8, r, 2) for r in range(8)]
    assert [p.replica for p in ranks] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [p.tp_rank for p in ranks] == [0, 1] * 4
    assert ranks[3].prompt_range(10) == range(3, 6)


def _entry(shape, dim, stride=1, kind="copy", name="m.weight"):
    return PlanEntry(Rule(name, ("x",), kind), 0, shape, torch.float32, dim, stride)


def _shards(full: torch.Tensor, dim: int, stride: int, tp: int) -> torch.Tensor:
    """What Megatron stores per TP rank: each of ``stride`` blocks split ``tp`` ways."""
    blocks = full.chunk(stride, dim)
    return torch.stack([torch.cat([b.chunk(tp, dim)[r] for b in blocks], dim) for r in range(tp)])


@pytest.mark.parametrize("dim, stride", [(0, 1), (1, 1), (0, 2)])
def test_assemble_shards_inverts_megatron_split(dim, stride):
    full = torch.randn(8, 12)
    parts = _shards(full, dim, stride, tp=2)
    assert torch.equal(assemble_shards(parts, _entry(tuple(full.shape), dim, stride)), full)


def test_gated_fc1_shards_are_gate_then_up_per_rank():
    gate, up = torch.randn(4, 3), torch.randn(4, 3)
    parts = torch.stack([torch.cat([gate[:2], up[:2]]), torch.cat([gate[2:], up[2:]])])
    full = assemble_shards(parts, _entry((8, 3), 0, stride=2, kind="gate_up"))
    assert torch.equal(full, torch.cat([gate, up]))


def test_buckets_keep_modules_whole_and_split_on_owner():
    def e(name, n, owner=0):
        return PlanEntry(Rule(name, ("x",), "copy"), owner, (n,), torch.float32, -1)

    entries = [e("a.weight", 10), e("a.bias", 10), e("b.weight", 100), e("c.weight", 5),
               e("d.weight", 5, owner=1)]  # fmt: skip
    buckets = [[x.name for x in b] for b in make_buckets(entries, bucket_bytes=64)]
    # a (80 B) exceeds the bucket but stays whole; b alone; c then a new owner for d
    assert buckets == [["a.weight", "a.bias"], ["b.weight"], ["c.weight"], ["d.weight"]]


def test_logprob_mismatch_stats():
    a = torch.tensor([[0.0, -1.0, -2.0], [-0.5, 0.0, 0.0]])
    b = torch.tensor([[0.1, -1.0, -2.5], [-0.5, 9.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    stats = logprob_mismatch(a, b, mask)
    assert stats["n_tokens"] == 4
    assert stats["abs_max"] == pytest.approx(0.5)
    assert stats["abs_mean"] == pytest.approx(0.15)
    assert stats["signed_mean"] == pytest.approx((-0.1 + 0.5) / 4)
    empty = logprob_mismatch(a, b, torch.zeros_like(mask))
    assert empty["n_tokens"] == 0 and math.isnan(empty["abs_max"])  # not measured, not 0


def test_padded_responses_layout():
    batch = RolloutBatch([[1], [1]], [[5, 6, 7], [8]], [[-1.0, -2.0, -3.0], [-4.0]],
                         [True, False], [0, 0], 3)  # fmt: skip
    ids, logp, mask = batch.padded_responses(pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert logp.tolist() == [[-1.0, -2.0, -3.0], [-4.0, 0.0, 0.0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


BAD_VALUES = [("tensor_parallel_size", 0), ("top_p", 0.0), ("temperature", 0.0),
              ("dtype", "int8"), ("load_format", "pt")]  # fmt: skip


@pytest.mark.parametrize("field, value", BAD_VALUES)
def test_config_rejects_bad_values(field, value):
    cfg = RolloutConfig(**{field: value})
    with pytest.raises(ConfigError, match=field):
        cfg.validate()


def test_config_rollout_tp_must_divide_world():
    RolloutConfig(tensor_parallel_size=2).check_world(4)
    with pytest.raises(ConfigError, match="divide the world size 3"):
        RolloutConfig(tensor_parallel_size=2).check_world(3)


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("rank", [0, 1, 2])
def test_full_shaped_slice_is_the_piece(dim, rank):
    piece = torch.randn(4, 6)
    full = full_shaped(piece, dim, tp=3, rank=rank)
    assert full.shape == ((12, 6) if dim == 0 else (4, 18))
    assert torch.equal(full.narrow(dim, rank * piece.shape[dim], piece.shape[dim]), piece)
    if dim == 1:  # rows overlap: only the piece plus (tp - 1) columns are allocated
        assert full.untyped_storage().nbytes() == (24 + 2 * 6) * 4
