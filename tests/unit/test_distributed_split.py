from prime_megatron.distributed.split import split_even


def test_split_even():
    assert [(s.start, s.stop) for s in split_even(7, 3)] == [(0, 3), (3, 5), (5, 7)]
    assert [(s.start, s.stop) for s in split_even(1, 2)] == [(0, 1), (1, 1)]
    assert split_even(0, 2) == [slice(0, 0), slice(0, 0)]
