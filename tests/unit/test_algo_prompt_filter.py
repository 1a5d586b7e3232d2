"""Online prompt filter and the carry-over buffer (incl. checkpointable state)."""

import json

import pytest
import torch

from prime_megatron.algo import CarryOverBuffer, filter_groups


def test_accuracy_filter_hand_worked():
    # Four prompts x K=4 with accuracies 1.0, 0.25, 0.0, 0.5 -> keep prompts 1 and 3.
    outcome = torch.tensor([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0.0])
    group = torch.arange(4).repeat_interleave(4)
    keep, counts = filter_groups(outcome, group)
    assert keep.tolist() == [False] * 4 + [True] * 4 + [False] * 4 + [True] * 4
    assert counts == {"groups": 4, "too_hard": 1, "too_easy": 1, "kept": 2}


def test_range_is_inclusive_and_can_be_disabled():
    # K = 5: accuracies exactly 0.2 and 0.8 stay in [0.2, 0.8].
    outcome = torch.tensor([1, 0, 0, 0, 0, 1, 1, 1, 1, 0.0])
    group = torch.tensor([4] * 5 + [2] * 5)
    assert filter_groups(outcome, group)[0].all()
    none_kept = filter_groups(outcome, group, accuracy_range=(0.3, 0.7))[0]
    assert not none_kept.any()
    assert filter_groups(outcome, group, accuracy_range=None)[0].all()


@pytest.mark.parametrize("outcome", [[1.0, 1.0, 1.0, 0.2], [0.7, 0.1, 0.0, 0.0]])
def test_bounds_stay_inclusive_for_float32_outcomes(outcome):
    # Means of exactly 0.8 and 0.2, but float32(0.2) is a hair above 0.2 and float32(0.7)
    # a hair below 0.7, which pushed these groups just outside the inclusive range.
    keep, counts = filter_groups(torch.tensor(outcome), torch.zeros(4, dtype=torch.long))
    assert keep.all() and counts["kept"] == 1


def test_groups_clearly_outside_the_bounds_are_still_dropped():
    outcome = torch.tensor([1.0, 1.0, 1.0, 0.21, 0.0, 0.0, 0.0, 0.79])
    keep, counts = filter_groups(outcome, torch.tensor([0] * 4 + [1] * 4))
    assert not keep.any() and (counts["too_easy"], counts["too_hard"]) == (1, 1)


def test_drop_truncated_drops_the_whole_group():
    outcome = torch.tensor([1, 0, 1, 0.0])
    group = torch.tensor([0, 0, 1, 1])
    truncated = torch.tensor([False, True, False, False])
    keep, counts = filter_groups(outcome, group, truncated, drop_truncated=True)
    assert keep.tolist() == [False, False, True, True]
    assert counts["truncated"] == 1 and counts["kept"] == 1
    with pytest.raises(ValueError, match="truncated"):
        filter_groups(outcome, group, drop_truncated=True)


def test_buffer_fills_batches_and_carries_surplus_over():
    buf = CarryOverBuffer(max_age=1)
    # Step 0: need 3 groups, rolled out 3 * 2 = 6 prompts, 5 survived the filter.
    assert buf.prompts_to_generate(3, step=0, oversample_factor=2.0) == 6
    buf.add(["a", "b", "c", "d", "e"], step=0)
    assert buf.take(3, step=0) == ["a", "b", "c"]
    # Step 1: 2 carried over, so only 1 more group needed -> roll out 2 prompts.
    assert buf.prompts_to_generate(3, step=1, oversample_factor=2.0) == 2
    assert buf.take(3, step=1) is None and len(buf) == 2  # not enough: nothing taken
    buf.add(["f"], step=1)
    assert buf.take(3, step=1) == ["d", "e", "f"]  # oldest first


def test_stale_groups_expire():
    buf = CarryOverBuffer(max_age=1)
    buf.add([1, 2], step=0)
    buf.add([3], step=1)
    assert buf.take(1, step=2) == [3]  # groups from step 0 are two steps old at step 2
    assert len(buf) == 0
    no_carry = CarryOverBuffer(max_age=0)
    no_carry.add([1, 2], step=5)
    assert no_carry.take(1, step=5) == [1] and no_carry.take(1, step=6) is None


def test_state_round_trips_through_json():
    buf = CarryOverBuffer(max_age=2)
    buf.add([{"prompt": "1+1", "tokens": [3, 4], "rewards": [1.0, 0.0]}], step=3)
    buf.add([{"prompt": "2+2", "tokens": [5], "rewards": [0.5, 0.5]}], step=4)
    raw = buf.state_dict()
    state = json.loads(json.dumps(raw))  # plain python data only
    restored = CarryOverBuffer()
    restored.load_state_dict(state)
    assert restored.max_age == 2 and len(restored) == 2
    taken = buf.take(2, step=5)
    assert restored.take(2, step=5) == taken
    # The saved state is a copy: changing what the buffer handed out leaves it intact.
    taken[0]["tokens"].append(99)
    assert raw["entries"][0] == [3, {"prompt": "1+1", "tokens": [3, 4], "rewards": [1.0, 0.0]}]
    with pytest.raises(ValueError, match="entries"):
        restored.load_state_dict({"max_age": 1})
