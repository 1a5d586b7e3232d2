import pytest
import torch

from prime_megatron.passes.batch import IGNORE, Group, SampleBatch
from prime_megatron.passes.micro import ragged_micro_batches


def test_layout_of_prompt_response_and_padding():
    g = Group(
        [5, 6], [[7, 8, 9], [10]], [[-0.1, -0.2, -0.3], [-0.4]], [False, True], [1.0, 0.0], 3, 2
    )
    b = SampleBatch.from_groups([g], pad_id=0, pad_to_multiple=8)
    assert b.tokens.tolist() == [[5, 6, 7, 8, 9, 0, 0, 0], [5, 6, 10, 0, 0, 0, 0, 0]]
    # label t is token t+1; only response tokens are labels
    assert b.labels.tolist() == [[IGNORE, 7, 8, 9, IGNORE, IGNORE, IGNORE],
                                 [IGNORE, 10, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE]]  # fmt: skip
    assert b.mask.sum(-1).tolist() == [3.0, 1.0]
    assert torch.allclose(b.rollout_logp[0, 1:4], torch.tensor([-0.1, -0.2, -0.3]))
    assert b.group.tolist() == [0, 0] and b.truncated.tolist() == [False, True]
    assert b.outcome.tolist() == [1.0, 0.0]


def test_select_slices_extras_too():
    g = Group([5], [[7], [8], [9]], [[0.0]] * 3, [False] * 3, [1.0, 0.0, 1.0], 0, 0)
    b = SampleBatch.from_groups([g], pad_id=0).with_extras(adv=torch.tensor([1.0, 2.0, 3.0]))
    picked = b.select(torch.tensor([2, 0]))
    assert picked.extras["adv"].tolist() == [3.0, 1.0] and picked.tokens[:, 1].tolist() == [9, 7]


def test_from_pairs_is_one_group_per_pair():
    b = SampleBatch.from_pairs([([5, 6], [7, 8]), ([5], [9])], pad_id=0)
    assert b.group.tolist() == [0, 1] and b.mask.sum(1).tolist() == [2.0, 1.0]
    assert b.labels[0, 1:3].tolist() == [7, 8] and b.labels[1, 0].item() == 9
    assert b.rollout_logp.abs().sum() == 0 and not b.truncated.any()


def _ragged_batch() -> SampleBatch:
    g = Group([5, 6], [[7, 8, 9, 1, 2], [10], []], [[0.0] * 5, [0.0], []], [False] * 3,
              [1.0, 0.0, 0.0], 0, 0)  # fmt: skip
    return SampleBatch.from_groups([g], pad_id=0, pad_to_multiple=4)


def test_lengths_end_at_the_last_response_label():
    b = _ragged_batch()
    assert b.tokens.shape[1] == 8
    # prompt 2 + response 5 tokens; prompt 2 + 1; no response: nothing to predict
    assert b.lengths().tolist() == [7, 3, 1]


def test_trimmed_cuts_per_label_tensors_and_keeps_per_sample_ones():
    b = _ragged_batch().with_extras(adv=torch.ones(3, 7), old=torch.arange(3.0))
    t = b.trimmed(3)
    assert t.tokens.tolist() == b.tokens[:, :3].tolist()
    assert t.labels.shape == t.mask.shape == t.rollout_logp.shape == (3, 2)
    assert t.extras["adv"].shape == (3, 2) and t.extras["old"].tolist() == [0.0, 1.0, 2.0]
    assert t.outcome.tolist() == b.outcome.tolist() and t.group.tolist() == b.group.tolist()


def test_ragged_micro_batches_sort_rows_and_trim_each_to_its_longest():
    lengths = torch.tensor([30, 5, 17, 5, 40, 9])
    plan = ragged_micro_batches(lengths, micro_batch_size=4, max_width=40)
    rows = torch.cat([r for r, _ in plan])
    assert sorted(rows.tolist()) == list(range(6))  # every row exactly once
    assert [r.tolist() for r, _ in plan] == [[1, 3, 5, 2], [0, 4]]  # stable order
    assert [w for _, w in plan] == [24, 40]  # 17 -> 24; 40 capped at the batch's width
    for r, w in plan:
        assert bool((lengths[r] <= w).all())


def test_a_trimmed_batch_keeps_every_response_label():
    b = _ragged_batch()
    for rows, width in ragged_micro_batches(b.lengths(), 2, b.tokens.shape[1], 4):
        part = b.select(rows).trimmed(width)
        assert part.mask.sum() == b.select(rows).mask.sum()
        assert (part.labels != IGNORE).sum() == (b.select(rows).labels != IGNORE).sum()


def _groups_batch(responses: list[list[list[int]]]) -> SampleBatch:
    groups = [
        Group([5, 6], rs, [[-0.5] * len(r) for r in rs], [False] * len(rs),
              [1.0] + [0.0] * (len(rs) - 1), i, 0)
        for i, rs in enumerate(responses)
    ]  # fmt: skip
    return SampleBatch.from_groups(groups, pad_id=0, pad_to_multiple=1)


def test_concat_pads_to_the_widest_and_keeps_groups_apart():
    wide = _groups_batch([[[7, 8, 9, 10], [7]], [[8, 8], [9, 9, 9]]])  # width 6
    narrow = _groups_batch([[[11], [12, 13]]])  # width 4
    wide = wide.with_extras(ref_logp=torch.full_like(wide.mask, -1.0))
    narrow = narrow.with_extras(ref_logp=torch.full_like(narrow.mask, -2.0))
    joined = SampleBatch.concat([wide, narrow], pad_id=3)
    assert joined.tokens.shape == (6, 6)
    assert joined.group.tolist() == [0, 0, 1, 1, 2, 2]
    assert joined.tokens[4].tolist() == [5, 6, 11, 0, 3, 3]  # its own padding, then pad_id
    assert joined.labels[4].tolist() == [IGNORE, 11, IGNORE, IGNORE, IGNORE]
    assert joined.mask[4:].tolist() == [[0, 1, 0, 0, 0], [0, 1, 1, 0, 0]]
    assert joined.extras["ref_logp"][4].tolist() == [-2.0, -2.0, -2.0, 0.0, 0.0]
    assert torch.equal(joined.select(slice(0, 4)).tokens, wide.tokens)
    assert joined.outcome.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    # Each row's log-prob inputs are unchanged: the same lengths, the same labels.
    assert joined.lengths().tolist() == [*wide.lengths().tolist(), *narrow.lengths().tolist()]


def test_concat_refuses_batches_with_different_extras():
    a = _groups_batch([[[7], [8]]]).with_extras(ref_logp=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="extras differ"):
        SampleBatch.concat([a, _groups_batch([[[7], [8]]])], pad_id=0)


def test_state_round_trips_through_torch_save(tmp_path):
    batch = _groups_batch([[[7, 8], [9]]]).with_extras(ref_logp=torch.full((2, 4), -0.5))
    torch.save([batch.to_state()], tmp_path / "rank.pt")  # as a checkpoint holds it
    (state,) = torch.load(tmp_path / "rank.pt", weights_only=False)
    back = SampleBatch.from_state(state)
    for name, value in batch.to_state().items():
        if name == "extras":
            assert back.extras.keys() == value.keys()
            assert all(torch.equal(back.extras[k], v) for k, v in value.items())
        else:
            assert torch.equal(getattr(back, name), value) and getattr(back, name) is not value
