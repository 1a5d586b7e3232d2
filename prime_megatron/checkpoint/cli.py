"""Shared command-line plumbing for the checkpoint tools: errors become one clear line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from prime_megatron.checkpoint.hf_io import CheckpointError
from prime_megatron.checkpoint.rules import MappingError
from prime_megatron.models.arch import UnsupportedModelError

USER_ERRORS = (CheckpointError, MappingError, UnsupportedModelError, ValueError, FileNotFoundError)


def run_tool(name: str, work: Callable[[], str]) -> int:
    """Run ``work`` (returns a summary line); a user error prints one line,
    ``error: ... (nothing was written)``, and exits 2."""
    start = time.perf_counter()
    try:
        summary = work()
    except USER_ERRORS as e:
        print(f"{name}: error: {e} (nothing was written)", file=sys.stderr)
        return 2
    print(f"{name}: {summary} ({time.perf_counter() - start:.1f} s)")
    return 0
