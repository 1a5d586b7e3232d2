"""A cgroup v2 memory limit for each sandbox, where the host delegates one to us.

RLIMIT_AS bounds each process's address space, not memory that no mapping holds: memfd
and tmpfs pages, SysV shared memory, pipe and socket buffers. ``memory.max`` of a cgroup
holding the whole sandbox bounds all of it (v2 charges page cache and kernel memory too).
That needs a cgroup v2 dir whose children get the memory controller and that we may
write: ``sandbox.cgroup_parent``, or by default our own cgroup if it qualifies. Without
one the seccomp filter refuses memfd_create and the IPC namespace gets small limits (see
``isolate.limit_ipc``); the probe reports which is in force.
"""

import contextlib
import os
import time
import uuid

MEMORY_CGROUP = "cgroup"  # memory.max of a per-sandbox cgroup bounds everything
MEMORY_RLIMITS = "rlimits"  # per-process RLIMIT_AS; memfd_create refused


def _own_cgroup() -> str | None:
    """This process's cgroup v2 dir, or None where there is no cgroup v2 hierarchy."""
    mount = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                mount = fields[4]
                break
    if mount is None:
        return None
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return os.path.join(mount, line[3:].strip().lstrip("/"))
    return None


def usable(parent: str) -> bool:
    """Whether children of ``parent`` get the memory controller and we may make them."""
    try:
        with open(os.path.join(parent, "cgroup.subtree_control")) as f:
            controllers = f.read().split()
    except OSError:
        return False
    return "memory" in controllers and os.access(parent, os.W_OK)


def find_parent(configured: str) -> str | None:
    """Where to make sandbox cgroups: ``configured`` (``ValueError`` if it cannot serve),
    else our own cgroup if it qualifies, else None (no cgroup here)."""
    if configured:
        if not usable(configured):
            message = f"sandbox.cgroup_parent {configured!r} is not a writable cgroup v2 dir"
            raise ValueError(message + " with memory in cgroup.subtree_control")
        return configured
    own = _own_cgroup()
    return own if own is not None and usable(own) else None


def create(parent: str, memory_bytes: int) -> str:
    """A new cgroup under ``parent`` limited to ``memory_bytes``, none of it swapped."""
    path = os.path.join(parent, f"prime-sandbox-{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    _write(path, "memory.max", str(memory_bytes))
    if os.path.exists(os.path.join(path, "memory.swap.max")):
        _write(path, "memory.swap.max", "0")  # else the limit would only move pages to swap
    return path


def join(path: str) -> None:
    """Move this process (and so all it will start) into the cgroup at ``path``."""
    _write(path, "cgroup.procs", str(os.getpid()))


def remove(path: str, wait_s: float = 2.0) -> None:
    """Kill what is left in the cgroup, then remove it (it must be empty first)."""
    with contextlib.suppress(OSError):  # cgroup.kill needs Linux 5.14
        _write(path, "cgroup.kill", "1")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.rmdir(path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # the killed processes are still exiting


def _write(path: str, name: str, value: str) -> None:
    with open(os.path.join(path, name), "w") as f:
        f.write(value)
