import torch

from prime_megatron.passes.batch import IGNORE, Group, SampleBatch


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
