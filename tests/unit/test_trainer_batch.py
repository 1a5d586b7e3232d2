import torch

from prime_megatron.trainer.batch import IGNORE, Group, SampleBatch, split_even


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


def test_split_even():
    assert [(s.start, s.stop) for s in split_even(7, 3)] == [(0, 3), (3, 5), (5, 7)]
    assert [(s.start, s.stop) for s in split_even(1, 2)] == [(0, 1), (1, 1)]
