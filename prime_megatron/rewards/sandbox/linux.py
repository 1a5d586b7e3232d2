"""Thin ctypes wrappers for the Linux calls the sandbox needs and Python 3.10/3.11 lacks.

Each raises ``OSError`` with the kernel's errno, so callers can report exactly what the
kernel refused.
"""

import ctypes
import ctypes.util
import errno
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# keyctl(2) has no libc wrapper: its number where we know it.
_KEYCTL = {"x86_64": 250, "aarch64": 219}
_KEYCTL_JOIN_SESSION_KEYRING = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare(0x{flags:x})")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    args = (enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    result = _libc.mount(*args)
    _check(result, f"mount({source!r}, {target!r}, flags=0x{flags:x})")


def join_new_session_keyring() -> bool:
    """Replace the session keyring inherited from the trainer by a new, empty one.

    Holding a keyring grants its "possessor" rights to every key in it, whatever our uid.
    False where this architecture's syscall number is unknown or the kernel has no keys.
    """
    number = _KEYCTL.get(os.uname().machine)
    if number is None:
        return False
    join = ctypes.c_long(_KEYCTL_JOIN_SESSION_KEYRING)
    if _libc.syscall(ctypes.c_long(number), join, None) >= 0:
        return True
    err = ctypes.get_errno()
    if err == errno.ENOSYS:
        return False
    raise OSError(err, f"keyctl(KEYCTL_JOIN_SESSION_KEYRING): {os.strerror(err)}")


def pivot_root(new_root: str, put_old: str) -> None:
    args = (os.fsencode(new_root), os.fsencode(put_old))
    _check(_libc.pivot_root(*args), f"pivot_root({new_root!r}, {put_old!r})")


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(os.fsencode(target), flags), f"umount2({target!r}, {flags})")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option}, {arg})")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_all_capabilities() -> None:
    """Clear the effective, permitted and inheritable capability sets of this thread."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # zero-initialised: no capabilities at all
    _check(_libc.capset(ctypes.byref(header), data), "capset(none)")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def set_seccomp_filter(instructions: int, count: int) -> None:
    """Attach the BPF program at address ``instructions`` (``count`` sock_filter entries)."""
    prog = _SockFprog(count, instructions)
    result = _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0)
    _check(result, "prctl(PR_SET_SECCOMP)")
