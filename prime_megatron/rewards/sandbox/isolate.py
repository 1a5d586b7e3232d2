"""Kernel-level isolation steps, run by the bootstrap (before any untrusted code exists).

Order matters and is driven by ``bootstrap.py``: namespaces -> (fork into the new PID
namespace) -> the filesystem (``rootfs.py``) -> privileges. Every step raises ``OSError``
when the kernel refuses, so the bootstrap can fail closed with the kernel's reason.
"""

import os
import resource

from . import linux
from .protocol import MODE_PRIVILEGED, MODE_USERNS, Limits

# The IPC namespace gives the program its own SysV IPC objects and POSIX message queues,
# which vanish with it: none of the host's, and none left for the next program.
_NAMESPACES = linux.CLONE_NEWNS | linux.CLONE_NEWNET | linux.CLONE_NEWPID | linux.CLONE_NEWIPC


def enter_namespaces() -> str:
    """New mount, network, PID and IPC namespaces for this process's future children.

    As root (CAP_SYS_ADMIN) the namespaces are created directly; otherwise inside a new
    user namespace that maps only our own uid/gid. Returns the mode used.
    """
    try:
        linux.unshare(_NAMESPACES)
        return MODE_PRIVILEGED
    except PermissionError:
        pass
    uid, gid = os.getuid(), os.getgid()
    linux.unshare(linux.CLONE_NEWUSER | _NAMESPACES)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    return MODE_USERNS


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# Sizes in the sandbox's own IPC namespace (these sysctls are per namespace): no rlimit
# counts SysV shared memory or messages, so where no cgroup does, these bound them.
_IPC_LIMITS = {"msgmni": 16, "msgmnb": 16384}


def limit_ipc(shm_bytes: int) -> bool:
    """Bound the SysV IPC memory of our new IPC namespace: shared memory to ``shm_bytes``,
    messages to 16 queues of 16 KiB. False where the kernel does not let us (in a user
    namespace, older kernels leave these sysctls to the host's root)."""
    pages = shm_bytes // os.sysconf("SC_PAGESIZE")
    limits = {**_IPC_LIMITS, "shmmax": shm_bytes, "shmall": pages}
    try:
        for name, value in limits.items():
            _write(f"/proc/sys/kernel/{name}", str(value))
    except OSError:
        return False
    return True


def drop_privileges(uid: int | None) -> None:
    """Become unprivileged for good: no capabilities, no setuid gains, no way back.

    With ``uid`` (root only) switch to it, which clears all capabilities. Without it (user
    namespace, or already unprivileged) keep our uid and clear what capabilities we hold.
    """
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:
        linux.drop_all_capabilities()
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)


def apply_limits(limits: Limits) -> None:
    """rlimits for one test process (inherited by anything it manages to start)."""
    cpu = max(1, int(limits.cpu_time_s))
    for kind, soft, hard in [
        (resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU at soft, SIGKILL at hard
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
        (resource.RLIMIT_FSIZE, limits.max_file_bytes, limits.max_file_bytes),
        (resource.RLIMIT_NOFILE, limits.max_open_files, limits.max_open_files),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_MSGQUEUE, 0, 0),  # POSIX message queues: no other limit counts them
    ]:
        resource.setrlimit(kind, (soft, hard))
