"""A Python audit hook that *reports* forbidden operations of a test program.

It is detection, not the security boundary: the kernel (namespaces, uid, read-only
mounts, seccomp, rlimits) enforces; sandboxed code can reach this hook's closure and
switch it off. The hook turns "tried to open a socket / start a process /
signal another process / write outside scratch" into a ``sandbox_violation`` outcome
instead of an ordinary crash, and stops fork bombs early. Code that escapes the hook
(ctypes is flagged too, C extensions are not) still meets the kernel's limits.
"""

import contextlib
import os
import socket
import sys

_PROCESS_EVENTS = {
    "os.fork",
    "os.forkpty",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.system",
    "subprocess.Popen",
    "pty.spawn",
}
_NETWORK_EVENTS = {
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
}
_PATH_EVENTS = {
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.symlink",
    "os.link",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.utime",
    "shutil.rmtree",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install(scratch: str, flag_fd: int) -> None:
    """Flag (write the event name to ``flag_fd``) and refuse forbidden operations."""
    scratch = os.path.realpath(scratch)

    def outside(path: object) -> bool:
        if isinstance(path, int):  # an fd we already hold
            return False
        full = os.path.realpath(os.fsdecode(path))
        return full != scratch and not full.startswith(scratch + os.sep)

    def forbidden(event: str, args: tuple) -> bool:
        if event in _PROCESS_EVENTS or event in _NETWORK_EVENTS:
            return True
        if event == "socket.__new__":
            return args[1] not in (socket.AF_UNIX, -1)
        if event in ("os.kill", "os.killpg"):
            return args[0] not in (0, os.getpid())
        if event == "ctypes.dlopen":
            return True
        if event == "open":
            path, mode, flags = args
            writes = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & _WRITE_FLAGS)
            return writes and outside(path)
        if event in _PATH_EVENTS:
            return any(outside(a) for a in args if isinstance(a, (str, bytes, os.PathLike)))
        return False

    def hook(event: str, args: tuple) -> None:
        if forbidden(event, args):
            with contextlib.suppress(OSError):  # pipe full or closed: one flag is enough
                os.write(flag_fd, event.encode() + b"\n")
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(hook)
