"""A seccomp filter for the sandbox: the syscalls namespaces cannot confine, refused.

The network namespace confines IP sockets, but not unix sockets named by a path (the
sandbox's root holds no host socket, but ``connect`` needs no writable mount), nor
vsock (a VM's line to its host). Creating a user namespace would hand the program a fresh
set of capabilities and much kernel attack surface. So, for the sandbox and everything it
starts (filters are inherited and cannot be removed):

* ``socket`` only for IPv4/IPv6, which the network namespace confines;
* ``socketpair`` only for connected unix stream pairs (asyncio's self-pipe), which can
  reach nothing but each other: a datagram pair could ``sendto`` any host path;
* ``unshare`` / ``clone`` refused with ``CLONE_NEWUSER``; ``clone3`` (flags behind a
  pointer the filter cannot read) answers ENOSYS, so libc falls back to ``clone``;
* io_uring refused: its operations create and connect sockets without these syscalls;
* the kernel key syscalls (``add_key``, ``request_key``, ``keyctl``) answer ENOSYS: keys
  reach past every namespace here (the trainer's session keyring, a uid's user keyring);
* ``memfd_secret`` answers ENOSYS, and where no cgroup bounds the sandbox's memory,
  ``memfd_create`` (and ``shmget`` / ``msgget`` if the IPC limits could not be set) are
  refused: their pages count against no rlimit.

A syscall of another ABI (x32, or 32-bit x86 via ``int 0x80``) uses other numbers and
would slip past the checks, so it kills the process.

The filter is classic BPF over ``struct seccomp_data``; it needs no libseccomp. Only
architectures whose syscall numbers are listed here get it: elsewhere the namespaces and
the sandbox's root (which holds no host socket) protect alone, and the probe warns.
"""

import ctypes
import errno
import os
import socket
import struct
import sys
from dataclasses import dataclass

from . import linux

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000


@dataclass(frozen=True)
class _Syscalls:
    socket: int
    socketpair: int
    clone: int
    unshare: int
    keys: tuple[int, int, int]  # add_key, request_key, keyctl
    # Refused only where no cgroup bounds the memory they hold (see ``install``).
    memfd_create: int
    shmget: int
    msgget: int
    clone3: int = 435
    memfd_secret: int = 447
    io_uring: tuple[int, ...] = (425, 426, 427)  # setup, enter, register


_SYSCALLS = {
    "x86_64": _Syscalls(
        socket=41,
        socketpair=53,
        clone=56,
        unshare=272,
        keys=(248, 249, 250),
        memfd_create=319,
        shmget=29,
        msgget=68,
    ),
    "aarch64": _Syscalls(
        socket=198,
        socketpair=199,
        clone=220,
        unshare=97,
        keys=(217, 218, 219),
        memfd_create=279,
        shmget=194,
        msgget=186,
    ),
}

_ALLOWED_SOCKET_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_SOCK_TYPE_MASK = 0xF  # type without SOCK_CLOEXEC / SOCK_NONBLOCK

# BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_ALU_AND_K = 0x54
_JEQ_K, _JGE_K, _JSET_K = 0x15, 0x35, 0x45
_RET_K = 0x06
_RET_KILL_PROCESS = 0x80000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

# Offsets in struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6]. An argument's
# low 32 bits come first (little-endian only, see ``supported``); that is all the kernel
# reads of an int argument, and where the CLONE_* bits live in a flags word.
_NR, _ARCH = 0, 4


def _arg(index: int) -> int:
    return 16 + 8 * index


def supported() -> bool:
    """Whether this machine gets the filter (else only the mount layer protects)."""
    return os.uname().machine in _SYSCALLS and sys.byteorder == "little"


class _Program:
    """A tiny BPF assembler: jumps name labels, resolved to forward offsets at the end."""

    def __init__(self) -> None:
        self._code: list[tuple[int, str | int, str | int, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def load(self, offset: int) -> None:
        self._code.append((_LD_W_ABS, 0, 0, offset))

    def and_(self, mask: int) -> None:
        self._code.append((_ALU_AND_K, 0, 0, mask))

    def jump(self, op: int, value: int, true: str | int = 0, false: str | int = 0) -> None:
        """Go to label ``true`` / ``false`` (0: the next instruction)."""
        self._code.append((op, true, false, value))

    def ret(self, action: int) -> None:
        self._code.append((_RET_K, 0, 0, action))

    def assemble(self) -> bytes:
        out = b""
        for at, (op, true, false, k) in enumerate(self._code):
            jt, jf = (self._offset(at, target) for target in (true, false))
            out += struct.pack("=HBBI", op, jt, jf, k)
        return out

    def _offset(self, at: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        offset = self._labels[target] - at - 1
        if not 0 <= offset <= 0xFF:
            raise ValueError(f"BPF jump to {target!r} out of range ({offset})")
        return offset


def _deny(code: int) -> int:
    return _RET_ERRNO | code


def build_filter(machine: str, refuse: tuple[str, ...] = ()) -> bytes:
    """The filter program for ``machine`` (a key of ``_SYSCALLS``), as sock_filter[];
    ``refuse`` names more syscalls (fields of ``_Syscalls``) to answer EPERM."""
    nr = _SYSCALLS[machine]
    p = _Program()
    p.load(_ARCH)
    p.jump(_JEQ_K, _AUDIT_ARCH[machine], false="kill")
    p.load(_NR)
    p.jump(_JGE_K, _X32_SYSCALL_BIT, true="kill")  # x32 numbers sit above native ones
    p.jump(_JEQ_K, nr.socket, true="socket")
    p.jump(_JEQ_K, nr.socketpair, true="socketpair")
    p.jump(_JEQ_K, nr.unshare, true="flags")
    p.jump(_JEQ_K, nr.clone, true="flags")
    for number in (nr.clone3, nr.memfd_secret, *nr.keys):
        p.jump(_JEQ_K, number, true="enosys")
    for number in (*nr.io_uring, *(getattr(nr, name) for name in refuse)):
        p.jump(_JEQ_K, number, true="eperm")
    p.ret(_RET_ALLOW)

    p.label("socket")
    p.load(_arg(0))
    for family in _ALLOWED_SOCKET_FAMILIES:
        p.jump(_JEQ_K, family, true="allow")
    p.ret(_deny(errno.EPERM))

    p.label("socketpair")
    p.load(_arg(0))
    p.jump(_JEQ_K, socket.AF_UNIX, false="eperm")
    p.load(_arg(1))
    p.and_(_SOCK_TYPE_MASK)
    p.jump(_JEQ_K, socket.SOCK_STREAM, true="allow", false="eperm")

    p.label("flags")
    p.load(_arg(0))
    p.jump(_JSET_K, linux.CLONE_NEWUSER, true="eperm", false="allow")

    p.label("allow")
    p.ret(_RET_ALLOW)
    p.label("eperm")
    p.ret(_deny(errno.EPERM))
    p.label("enosys")
    p.ret(_deny(errno.ENOSYS))
    p.label("kill")
    p.ret(_RET_KILL_PROCESS)
    return p.assemble()


def install(refuse: tuple[str, ...] = ()) -> bool:
    """Filter this process and all it starts; False where the architecture has no filter.
    ``refuse``: more syscalls to refuse, as for ``build_filter``.

    Needs no_new_privs (set by ``isolate.drop_privileges``) or CAP_SYS_ADMIN. Raises
    ``OSError`` when the kernel refuses the filter, so the sandbox fails closed.
    """
    if not supported():
        return False
    program = build_filter(os.uname().machine, refuse)
    buffer = ctypes.create_string_buffer(program, len(program))
    linux.set_seccomp_filter(ctypes.addressof(buffer), len(program) // 8)
    return True
