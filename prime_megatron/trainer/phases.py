"""The phases of a PRIME step, the models each computes with, and their timer.

Kept free of torch: ``trainer/offload.py`` moves models by this table and
``planning/memory.py`` estimates each phase's device memory from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum


class Phase(StrEnum):
    """A timed phase of a step; its value names the ``time/<value>`` metric."""

    ROLLOUT = "rollout"
    LOGPROBS = "logprobs"
    PRM_UPDATE = "prm_update"
    POLICY_UPDATE = "policy_update"
    WEIGHT_SYNC = "weight_sync"
    VERIFY_SYNC = "verify_sync"
    STEP_CREDIT = "step_credit"


# prm_ref: the PRM's own frozen start, when it has one (prm_model); ref: the policy's.
MODEL_NAMES = ("policy", "prm", "ref", "prm_ref")
# Phase -> the models it computes with (every phase has an entry: tests/unit/test_offload.py).
PHASE_MODELS: dict[Phase, tuple[str, ...]] = {
    Phase.ROLLOUT: (),
    Phase.LOGPROBS: ("policy", "ref", "prm", "prm_ref"),
    Phase.PRM_UPDATE: ("prm",),
    Phase.POLICY_UPDATE: ("policy",),
    Phase.WEIGHT_SYNC: ("policy",),
    Phase.VERIFY_SYNC: ("policy",),
    # The PRM and its reference re-score the probe set; the batch's part is host work.
    Phase.STEP_CREDIT: ("policy", "prm", "ref", "prm_ref"),
}


class PhaseTimer:
    """A step's accounts: wall-clock seconds per phase (``with timer(Phase.ROLLOUT): ...``)
    and the model passes it ran (``count_pass``). ``on_enter(phase)`` runs first on entering
    a phase (the offloader's hook), timed with it."""

    def __init__(self, on_enter: Callable[[Phase], None] | None = None) -> None:
        self.seconds: dict[Phase, float] = {}
        self.passes: dict[str, float] = {}
        self.on_enter = on_enter

    def count_pass(self, model: str, trains: bool, share: float) -> None:
        """A pass of ``model`` (forward+backward when ``trains``) over ``share`` of the
        step's batch, in rows: two epochs over it count 2.0."""
        key = f"{model}_{'train' if trains else 'forward'}"
        self.passes[key] = self.passes.get(key, 0.0) + share

    @contextmanager
    def __call__(self, phase: Phase) -> Iterator[None]:
        phase = Phase(phase)  # a misspelt name raises here instead of keeping every model
        start = time.perf_counter()
        if self.on_enter is not None:
            self.on_enter(phase)
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        """``time/<phase>`` seconds of the phases entered so far and ``passes/<model>_<kind>``
        (kind: forward, train) counted so far."""
        times = {f"time/{phase.value}": seconds for phase, seconds in self.seconds.items()}
        return times | {f"passes/{key}": count for key, count in self.passes.items()}
