"""Resident-memory measurements for the sync tests and benchmarks (Linux /proc)."""

from __future__ import annotations

import ctypes
import os

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


class PeakRSS:
    """Context manager: ``.peak_extra`` = peak RSS inside the block - RSS at entry (bytes).

    Exact, no sampling: the kernel's high-water mark (VmHWM) is reset to the current RSS
    at entry through /proc/self/clear_refs (Linux >= 4.0) and read at exit.
    """

    def __enter__(self) -> PeakRSS:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self.start = _status_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc) -> None:
        self.peak = _status_kb("VmHWM") * 1024

    @property
    def peak_extra(self) -> int:
        return self.peak - self.start


def release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``; no-op elsewhere).

    Sync buckets are large, short-lived host buffers; glibc keeps such freed chunks in its
    heap, which shows up as RSS creeping up by a fraction of a bucket per sync.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018  (glibc only)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()
