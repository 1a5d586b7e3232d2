"""Where, when and how a measurement was made, for benchmark records: the commit, the
date, the machine, the command line and the resolved configuration."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
        cmd = ["git", "-C", str(REPO), *args]
        try:
            with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True) as proc:  # fmt: skip
                out, _ = proc.communicate()
        except OSError:  # no git on this machine
            return ""
        return out.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: paths and unknown objects as strings, tuples and sets as
    lists, dataclasses and argparse namespaces as dicts."""
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def record(config: Any = None, overrides: Any = None) -> dict:
    """The provenance fields every benchmark JSON line carries: ``commit``, ``date`` (UTC),
    ``machine`` (CPU model, cores), ``loadavg_1m``, ``argv`` (the script's arguments) and,
    when given, ``config`` (the script's resolved arguments and, for scripts that launch
    the trainer, the trainer's resolved config) and ``overrides`` (the trainer overrides
    the script applied)."""
    out = {
        "commit": commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "argv": sys.argv[1:],
    }
    if config is not None:
        out["config"] = jsonable(config)
    if overrides is not None:
        out["overrides"] = jsonable(overrides)
    return out
