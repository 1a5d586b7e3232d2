import os
import time

import pytest

from prime_megatron.rewards.pool import TimeoutPool


def square_or_misbehave(x):
    if x == "hang":
        time.sleep(60)
    if x == "die":
        os._exit(3)
    if x == "raise":
        raise ValueError("bad item")
    return x * x


def import_this_module():
    """As an initializer it makes workers import this module (where the task function
    lives) before they report ready, so the import is not charged to the first task."""


@pytest.fixture(scope="module")
def pool():
    with TimeoutPool(workers=2, timeout_s=2.0, initializer=import_this_module) as p:
        yield p


def test_results_in_input_order(pool):
    results = pool.map(square_or_misbehave, list(range(20)))
    assert [r.value for r in results] == [x * x for x in range(20)]
    assert all(r.error is None for r in results)


def test_hang_is_killed_and_reported_as_timeout_others_unaffected(pool):
    start = time.monotonic()
    results = pool.map(square_or_misbehave, [1, "hang", 2, "hang", 3])
    elapsed = time.monotonic() - start
    assert [r.error for r in results] == [None, "timeout", None, "timeout", None]
    assert [r.value for r in results if r.error is None] == [1, 4, 9]
    assert elapsed < 8  # two hangs, killed at ~2 s each, on two workers


def test_dead_worker_is_a_crash_and_is_replaced(pool):
    restarts = pool.restarts
    results = pool.map(square_or_misbehave, ["die", 4, "raise", 5])
    assert [r.error for r in results] == ["crash", None, "crash", None]
    assert "worker process died" in results[0].message
    assert "ValueError: bad item" in results[2].message
    assert pool.restarts == restarts + 1  # an exception does not cost a worker
    assert [r.value for r in pool.map(square_or_misbehave, [6, 7])] == [36, 49]


def test_empty_map(pool):
    assert pool.map(square_or_misbehave, []) == []


def failing_initializer():
    raise RuntimeError("no")


def test_worker_that_cannot_start_is_an_error():
    p = TimeoutPool(workers=1, timeout_s=1.0, initializer=failing_initializer)
    try:
        with pytest.raises(RuntimeError, match="failed to start"):
            p.map(square_or_misbehave, [1])
    finally:
        p.close()
