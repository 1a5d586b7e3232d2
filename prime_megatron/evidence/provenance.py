"""Where a measurement was made: the commit and the machine, for benchmark records."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def machine() -> str:
    """The CPU model and core count (``/proc/cpuinfo`` where there is one)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


def commit() -> str:
    """The checkout's short commit hash, with ``+dirty`` when files differ from it."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return out.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def record() -> dict:
    """The provenance fields every benchmark JSON line carries."""
    return {"commit": commit(), "machine": machine(), "loadavg_1m": round(os.getloadavg()[0], 2)}
