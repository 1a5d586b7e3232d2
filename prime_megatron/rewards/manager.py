"""Reward manager: route each sample to its verifier, score a batch in parallel, count
failures by kind. Math runs in a process pool (per-sample timeout); code runs in
sandboxes launched from a thread pool (each sandbox is its own process tree)."""

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .code_verifier import score_code
from .config import RewardConfig
from .math_verifier import math_task, warm_up
from .pool import TaskResult, TimeoutPool
from .verdict import BAD_GOLD, CRASH, FAILURE_KINDS, OK, TIMEOUT, Verdict

log = logging.getLogger(__name__)

# The pool kills a math worker this long after the in-worker deadline should have fired.
_KILL_GRACE_S = 2.0


@dataclass(frozen=True)
class RewardInput:
    response: str
    ground_truth: Any
    data_source: str
    ability: str


@dataclass
class RewardBatch:
    verdicts: list[Verdict]
    failures: dict[str, int] = field(default_factory=dict)  # every kind, zeros included

    @property
    def scores(self) -> list[float]:
        return [v.score for v in self.verdicts]


class RewardManager:
    def __init__(self, cfg: RewardConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self._pool: TimeoutPool | None = None
        self._threads: ThreadPoolExecutor | None = None

    def score(self, samples: Sequence[RewardInput]) -> RewardBatch:
        """Verdicts in input order plus failure counts. Bad routing or a malformed code
        ground truth raises (a data bug); a failing sample, or one whose math ground truth
        is unusable (``bad_gold``), scores 0 and is counted."""
        kinds = [self.cfg.verifier_for(s.data_source, s.ability) for s in samples]
        if not self.cfg.parallel:
            return _batch([self._score_serial(s, k) for s, k in zip(samples, kinds, strict=True)])
        code_ids = [i for i, k in enumerate(kinds) if k == "code"]
        math_ids = [i for i, k in enumerate(kinds) if k == "math"]
        verdicts: list[Verdict] = [Verdict(0.0)] * len(samples)
        # Sandboxes start first and run while this thread drives the math pool.
        code_futures = [self._code_threads().submit(self._code, samples[i]) for i in code_ids]
        math_tasks = [self._math_task(samples[i]) for i in math_ids]
        math_results = self._math_pool().map(math_task, math_tasks) if math_tasks else []
        for i, result in zip(math_ids, math_results, strict=True):
            verdicts[i] = _from_task(result)
        for i, future in zip(code_ids, code_futures, strict=True):
            verdicts[i] = future.result()
        return _batch(verdicts)

    def _score_serial(self, sample: RewardInput, kind: str) -> Verdict:
        return self._code(sample) if kind == "code" else math_task(self._math_task(sample))

    def _math_task(self, sample: RewardInput) -> tuple:
        extractors = tuple(self.cfg.answer_extractors)
        return (sample.response, str(sample.ground_truth), extractors, self.cfg.math_timeout_s)

    def _code(self, sample: RewardInput) -> Verdict:
        return score_code(sample.response, sample.ground_truth, self.cfg.sandbox)

    def _code_threads(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.cfg.num_workers, thread_name_prefix="sandbox")
        return self._threads

    def _math_pool(self) -> TimeoutPool:
        if self._pool is None:
            self._pool = TimeoutPool(
                self.cfg.num_workers,
                self.cfg.math_timeout_s + _KILL_GRACE_S,
                self.cfg.start_method,
                initializer=warm_up,
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._threads is not None:
            self._threads.shutdown()
            self._threads = None

    def __enter__(self) -> "RewardManager":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _from_task(result: TaskResult) -> Verdict:
    if result.error is None:
        return result.value
    return Verdict(0.0, TIMEOUT if result.error == "timeout" else CRASH, result.message)


def _batch(verdicts: list[Verdict]) -> RewardBatch:
    counts = Counter(v.status for v in verdicts if v.status != OK)
    failures = {kind: counts.get(kind, 0) for kind in FAILURE_KINDS}
    if any(failures.values()):  # the trainer logs the counts as metrics every step
        log.info("reward failures in a batch of %d: %s", len(verdicts), failures)
    bad_gold = [v.detail for v in verdicts if v.status == BAD_GOLD]
    if bad_gold:  # a data error, fixed in the data: say which ground truth, not just how many
        log.warning(
            "%d sample(s) have an unusable ground truth, e.g. %s", len(bad_gold), bad_gold[0]
        )
    return RewardBatch(verdicts, failures)
