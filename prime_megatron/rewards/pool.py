"""A process pool with a hard per-task timeout: a worker that overruns is killed and
replaced, and the task is reported as ``timeout`` (a dead worker as ``crash``).

``concurrent.futures`` cannot kill one stuck worker; this can. Results come back in
input order, so scoring is deterministic however the work was scheduled.
"""

import contextlib
import multiprocessing as mp
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any


@dataclass(frozen=True)
class TaskResult:
    value: Any = None
    error: str | None = None  # None, "timeout" or "crash"
    message: str = ""


def _worker_main(conn: Connection, initializer: Callable[[], None] | None) -> None:
    if initializer is not None:
        initializer()
    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        fn, item = task
        try:
            conn.send(TaskResult(value=fn(item)))
        except BaseException as e:
            conn.send(TaskResult(error="crash", message=f"{type(e).__name__}: {e}"))


class _Worker:
    def __init__(self, ctx, initializer: Callable[[], None] | None) -> None:
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child_conn, initializer), daemon=True)
        self.process.start()
        child_conn.close()
        self.task: int | None = None  # index of the task it is running
        self.deadline = 0.0
        self.ready = False

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


class TimeoutPool:
    """``map(fn, items)`` over ``workers`` processes; each task gets ``timeout_s`` seconds.

    ``fn`` must be picklable (a module-level function). ``initializer`` runs once per
    worker before its first task, outside the timeout; make it a function of ``fn``'s
    module, so that module is imported then and not on the clock of the first task.
    """

    def __init__(
        self,
        workers: int,
        timeout_s: float,
        start_method: str = "spawn",
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self._ctx = mp.get_context(start_method)
        self._timeout_s = timeout_s
        self._initializer = initializer
        self._workers = [_Worker(self._ctx, initializer) for _ in range(workers)]
        self.restarts = 0

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[TaskResult]:
        results: list[TaskResult | None] = [None] * len(items)
        todo = deque(range(len(items)))
        while todo or any(w.task is not None for w in self._workers):
            for worker in self._workers:
                if worker.ready and worker.task is None and todo:
                    worker.task = todo.popleft()
                    worker.deadline = time.monotonic() + self._timeout_s
                    worker.conn.send((fn, items[worker.task]))
            self._collect(results)
        return results  # type: ignore[return-value]

    def _collect(self, results: list) -> None:
        busy = [w for w in self._workers if w.task is not None or not w.ready]
        deadlines = [w.deadline for w in busy if w.task is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout)
        for worker in busy:
            if worker.conn in ready:
                self._receive(worker, results)
            elif worker.process.sentinel in ready:
                self._replace(worker, results, "crash", "worker process died")
            elif worker.task is not None and time.monotonic() >= worker.deadline:
                self._replace(worker, results, "timeout", f"over {self._timeout_s}s")

    def _receive(self, worker: _Worker, results: list) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            self._replace(worker, results, "crash", "worker process died")
            return
        if message == "ready":
            worker.ready = True
            return
        results[worker.task] = message
        worker.task = None

    def _replace(self, worker: _Worker, results: list, error: str, message: str) -> None:
        if worker.task is not None:
            results[worker.task] = TaskResult(error=error, message=message)
        elif not worker.ready:
            raise RuntimeError(f"pool worker failed to start ({message})")
        worker.kill()
        self._workers[self._workers.index(worker)] = _Worker(self._ctx, self._initializer)
        self.restarts += 1

    def close(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()
        self._workers = []

    def __enter__(self) -> "TimeoutPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
