"""What a run shows on the console: its own lines and progress bars, nothing else.

vLLM, Megatron, torch and Python's ``warnings`` report through ``logging`` (vLLM once told
not to install its own handlers: ``VLLM_CONFIGURE_LOGGING=0``, set by ``prime-train``).
``route_logs`` sends all of it to the rank's log file in the run dir; only ERROR records
still reach the console, since those explain a failure. A new user otherwise reads dozens
of harmless upstream WARNING lines (CPU-backend fallbacks, skipped tokenizer warm-up) as
failures.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_logger = logging.getLogger("prime_megatron")


def set_upstream_environment() -> None:
    """Environment for vLLM, torch and transformers, set before they are imported (values
    already set by the user win)."""
    # vLLM's CPU worker drops torch to one thread unless OMP_NUM_THREADS is set, which would
    # halve training speed on a single-process run: each local rank gets its share of cores.
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // ranks)))
    # Upstream logs go to the log file (route_logs): vLLM must not install its own
    # handlers; torch's C++ warnings (vLLM's NUMA-binding notice) and transformers'
    # weight-loading bars stay off the console.
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def route_logs(log_file: Path) -> None:
    """Every ``logging`` record (and Python warning) of this process to ``log_file``;
    ERROR and above also to stderr."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    to_console = logging.StreamHandler(sys.stderr)
    to_console.setLevel(logging.ERROR)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (to_file, to_console):
        root.addHandler(handler)
    logging.captureWarnings(True)


def say(message: str) -> None:
    """One of the run's own lines: on the console (above a live progress bar, if any)
    and in the log file."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()
    _logger.info(message)


class Progress:
    """A progress bar with rate and ETA: live (tqdm) on a terminal; elsewhere (a log file,
    CI) the same text as one line every ``line_every`` updates and at the end."""

    def __init__(self, total: int, desc: str, initial: int = 0, line_every: int = 1) -> None:
        self.total, self.desc, self.initial, self.line_every = total, desc, initial, line_every
        self.n = initial
        self.start = time.perf_counter()
        self.bar = (
            tqdm(total=total, desc=desc, initial=initial, file=sys.stdout, dynamic_ncols=True)
            if sys.stdout.isatty()
            else None
        )

    def update(self, n: int, postfix: str = "") -> None:
        """``n`` units done so far (absolute, not an increment)."""
        advanced, self.n = n - self.n, n
        if self.bar is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(advanced)
        if (n - self.initial) % self.line_every and n != self.total:
            return
        line = self.line(postfix)
        if self.bar is None:
            print(line, flush=True)
        _logger.info(line)
        if n == self.total:
            self.close()

    def line(self, postfix: str = "") -> str:
        elapsed = time.perf_counter() - self.start
        return tqdm.format_meter(
            self.n, self.total, elapsed, prefix=self.desc, ascii=True,
            postfix=postfix or None, initial=self.initial,
        )  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
