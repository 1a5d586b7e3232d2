import pytest
import torch

from prime_megatron.passes.batch import IGNORE, Group, SampleBatch
from prime_megatron.passes.micro import (
    MicroBatching,
    pack_bins,
    pack_rows,
    token_budget_micro_batches,
    unpack,
)


def test_token_budget_groups_short_rows_and_keeps_each_micro_batch_within_it():
    lengths = torch.tensor([100, 7, 3000, 9, 250, 8, 31, 1200])
    plan = token_budget_micro_batches(lengths, max_tokens=512, max_width=3000)
    assert sorted(i for rows, _ in plan for i in rows.tolist()) == list(range(8))
    for rows, width in plan:
        assert width >= int(lengths[rows].max()) and width % 8 == 0 or width == 3000
        assert len(rows) * width <= 512 or len(rows) == 1  # an over-long row goes alone
    assert [len(rows) for rows, _ in plan] == [4, 2, 1, 1]  # 7-31 share one, 100 and 250 one


def test_pack_bins_first_fit_by_decreasing_length():
    lengths = torch.tensor([5, 60, 30, 40, 100, 20])
    bins = pack_bins(lengths, max_tokens=100)
    assert [b.tolist() for b in bins] == [[4], [1, 3], [2, 5, 0]]
    assert all(int(lengths[b].sum()) <= 100 for b in bins)


def _rows():
    groups = [Group([5, 6, 7], [[8, 9], [10]], [[0.0, 0.0], [0.0]], [False] * 2, [1.0, 0.0], 0, 0),
              Group([11, 12], [[13, 14, 15]], [[0.0] * 3], [False], [1.0], 1, 0)]  # fmt: skip
    return SampleBatch.from_groups(groups, pad_id=0)


def test_packing_keeps_each_rows_tokens_labels_and_positions():
    batch = _rows()
    lengths = batch.lengths()
    packed = pack_rows(batch, lengths)
    assert packed.tokens.tolist() == [[5, 6, 7, 8, 9, 5, 6, 7, 10, 11, 12, 13, 14, 15]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2, 3, 4]]
    i = IGNORE  # row boundaries: a row's last token predicts nothing
    assert packed.labels.tolist() == [[i, i, 8, 9, i, i, i, 10, i, i, 13, 14, 15]]
    mask = packed.attention_mask[0, 0]
    assert not mask[6, 5] and mask[6, 4] and mask[5, 6]  # own row's past only


def test_unpack_is_the_inverse_of_the_packed_layout():
    batch = _rows()
    packed = pack_rows(batch, batch.lengths())
    values = torch.arange(1.0, packed.labels.shape[1] + 1)[None]
    rows = unpack(values, packed, batch.tokens.shape[1])
    assert rows.shape == batch.mask.shape
    assert rows[0, :4].tolist() == [1, 2, 3, 4] and rows[1, :3].tolist() == [6, 7, 8]
    assert rows[2, :4].tolist() == [10, 11, 12, 13] and (rows[:, 4:] == 0).all()


@pytest.mark.parametrize(
    "kwargs", [dict(rows=0), dict(rows=2, pack=True), dict(rows=2, max_tokens=-1)]
)
def test_invalid_micro_batching_is_refused(kwargs):
    with pytest.raises(ValueError, match="invalid micro-batching"):
        MicroBatching(**kwargs)
