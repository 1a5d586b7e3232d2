"""Kernel-level isolation steps, run by the bootstrap (before any untrusted code exists).

Order matters and is driven by ``bootstrap.py``: namespaces -> (fork into the new PID
namespace) -> mounts -> privileges. Every step raises ``OSError`` when the kernel refuses,
so the bootstrap can fail closed with the kernel's reason.
"""

import errno
import os
import re
import resource
import stat

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


_OPTION_FLAGS = {
    "nosuid": linux.MS_NOSUID,
    "nodev": linux.MS_NODEV,
    "noexec": linux.MS_NOEXEC,
    "noatime": linux.MS_NOATIME,
    "nodiratime": linux.MS_NODIRATIME,
    "relatime": linux.MS_RELATIME,
}


def _mounts() -> dict[str, int]:
    """Mount point -> its current per-mount flags, outermost first.

    A remount must repeat these: in a user namespace the kernel locks them and refuses a
    remount that would drop one.
    """
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            # mountinfo escapes space, tab, newline and backslash as \ooo octal.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            options = fields[5].split(",")
            flags = sum(_OPTION_FLAGS.get(o, 0) for o in options)
            if not flags & (linux.MS_NOATIME | linux.MS_RELATIME):
                flags |= linux.MS_STRICTATIME
            mounts[point] = flags
    return mounts


# Where host programs keep unix sockets, shared memory and temp files. Each is hidden behind
# an empty tmpfs: where no seccomp filter refuses unix sockets (an unknown architecture),
# this still leaves the usual ones out of reach, and other users' temp files unreadable.
HOST_SHARED_DIRS = ("/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm")


def _blocked_ancestor(path: str) -> str | None:
    """First directory on ``path`` (itself included) that "other" users cannot traverse."""
    current = "/"
    for part in ["", *path.strip("/").split("/")]:
        current = os.path.join(current, part)
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return current
    return None


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _outermost(dirs: list[str]) -> list[str]:
    """``dirs`` without those inside another of them (a tmpfs there would hide them)."""
    outer: list[str] = []
    for d in sorted(set(dirs), key=len):
        if not any(_within(d, o) for o in outer):
            outer.append(d)
    return outer


def expose_paths(paths: list[str], hide: tuple[str, ...] = ()) -> None:
    """Hide each dir of ``hide`` behind an empty tmpfs; keep each of ``paths`` reachable.

    A path under a hidden dir is bind-mounted back at the same place. So is one under a
    private parent (e.g. a Python installed under /root, mode 0700): that parent is hidden
    too, so the unprivileged sandbox uid can reach the interpreter's stdlib while the rest
    of /root stays invisible to sandboxed code.
    """
    paths = [os.path.realpath(p) for p in paths]
    # Parents only: a path's own mode is its owner's business (scratch is 0700 by design).
    parents = (_blocked_ancestor(os.path.dirname(p)) for p in paths)
    blocked = [b for b in parents if b is not None]
    hidden = _outermost(blocked + [os.path.realpath(d) for d in hide if os.path.isdir(d)])
    kept = [p for p in dict.fromkeys(paths) if any(_within(p, h) for h in hidden)]
    # Open every path before the first tmpfs hides it.
    handles = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in kept}
    try:
        for directory in hidden:
            linux.mount("tmpfs", directory, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV)
            os.chmod(directory, 0o755)
        # Outer paths first: binding one later would cover a path already bound inside it.
        for path in sorted(handles, key=len):
            os.makedirs(path, mode=0o755, exist_ok=True)
            flags = linux.MS_BIND | linux.MS_REC
            linux.mount(f"/proc/self/fd/{handles[path]}", path, None, flags)
    finally:
        for handle in handles.values():
            os.close(handle)


def build_filesystem(
    scratch: str, scratch_bytes: int, owner: int | None, expose: list[str]
) -> None:
    """Every mount read-only; ``scratch`` becomes a small private tmpfs (of ``owner``).

    The tmpfs bounds what the program can store (bytes and inodes) and vanishes with the
    namespace. ``HOST_SHARED_DIRS`` are emptied; ``scratch`` and ``expose`` stay
    reachable wherever they live. All mount changes stay inside our mount namespace.
    """
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    options = f"size={scratch_bytes},nr_inodes=4096,mode=0700"
    linux.mount("tmpfs", scratch, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, options)
    if owner is not None:
        os.chown(scratch, owner, owner)
    expose_paths([*expose, scratch], hide=HOST_SHARED_DIRS)
    for point, flags in _mounts().items():
        if point == scratch:
            continue
        try:
            remount = flags | linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY
            linux.mount(None, point, None, remount)
        except OSError as e:
            # A path listed twice or hidden under a later mount is not reachable.
            if e.errno not in (errno.EINVAL, errno.ENOENT):
                raise
    _verify_readonly(scratch)


def _verify_readonly(scratch: str) -> None:
    for point in _mounts():
        if point == scratch or not os.path.exists(point):
            continue
        if not os.statvfs(point).f_flag & os.ST_RDONLY:
            raise OSError(errno.EPERM, f"mount {point!r} is still writable")


def mount_private_proc() -> None:
    """A /proc that shows only the sandbox's PID namespace (no host processes)."""
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_RDONLY
    linux.mount("proc", "/proc", "proc", flags)


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
    ]:
        resource.setrlimit(kind, (soft, hard))
