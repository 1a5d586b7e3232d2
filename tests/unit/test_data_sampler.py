import copy
import json

import pytest

from prime_megatron.data.sampler import PromptSampler


def test_each_epoch_is_a_permutation_and_epochs_differ():
    sampler = PromptSampler(size=10, seed=3)
    first, second = sampler.next_indices(10), sampler.next_indices(10)
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second and first != list(range(10))
    assert (sampler.epoch, sampler.position) == (1, 10)


def test_same_seed_same_stream_other_seed_other_stream():
    a, b, c = PromptSampler(50, seed=1), PromptSampler(50, seed=1), PromptSampler(50, seed=2)
    assert a.next_indices(120) == b.next_indices(120)
    assert PromptSampler(50, seed=1).next_indices(50) != c.next_indices(50)


def test_no_shuffle_is_file_order():
    assert PromptSampler(4, seed=1, shuffle=False).next_indices(6) == [0, 1, 2, 3, 0, 1]


@pytest.mark.parametrize("stop_after", [0, 3, 7, 10, 23])
def test_resume_continues_exactly(stop_after):
    full = PromptSampler(7, seed=5)
    expected = full.next_indices(stop_after + 30)[stop_after:]
    first = PromptSampler(7, seed=5)
    first.next_indices(stop_after)
    state = json.loads(json.dumps(first.state_dict()))  # plain data, survives a checkpoint
    resumed = PromptSampler(7, seed=5)
    resumed.load_state_dict(state)
    got = []
    for n in (1, 4, 25):  # batch sizes need not match the original run
        got += resumed.next_indices(n)
    assert got == expected


@pytest.mark.parametrize("key,value", [("size", 8), ("seed", 6), ("shuffle", False)])
def test_resume_refuses_state_of_another_run(key, value):
    state = PromptSampler(7, seed=5).state_dict()
    other = copy.deepcopy(state)
    other[key] = value
    with pytest.raises(ValueError, match=f"sampler state has {key}="):
        PromptSampler(7, seed=5).load_state_dict(other)


def test_resume_refuses_out_of_range_position():
    state = {**PromptSampler(7, seed=5).state_dict(), "position": 9}
    with pytest.raises(ValueError, match="out of range"):
        PromptSampler(7, seed=5).load_state_dict(state)


def test_empty_dataset_is_rejected():
    with pytest.raises(ValueError, match="empty dataset"):
        PromptSampler(0, seed=1)
