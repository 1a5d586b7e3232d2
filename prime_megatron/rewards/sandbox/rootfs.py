"""The sandbox's filesystem: an allow-list, not the host's tree with parts hidden.

The program's root is a fresh tmpfs that holds, each at its host path, read-only binds of
what the interpreter and the usual shell tools need (``SYSTEM_PATHS``, the Python
installation), a few device nodes, the test inputs, and the scratch tmpfs, the only
writable place. Nothing else of the host exists inside: no home, data or run dirs, no
host /tmp, /run or /dev/shm with their sockets. ``pivot_root`` then detaches the host's
tree from the sandbox's mount namespace, so no path and no ``..`` leads back to it.
"""

import errno
import os
import re

from . import linux

# Binaries, shared libraries and the loader's cache: what `python -S` and /bin/sh need.
# Symlinks (e.g. /bin -> usr/bin on merged-/usr systems) are recreated as symlinks.
SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/localtime",
)
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_DEVICE_LINKS = {
    "/dev/fd": "/proc/self/fd",
    "/dev/stdin": "/proc/self/fd/0",
    "/dev/stdout": "/proc/self/fd/1",
    "/dev/stderr": "/proc/self/fd/2",
}
# The root itself: small, since nothing may be written to it once it is read-only.
_ROOT_OPTIONS = "size=1m,nr_inodes=1024,mode=0755"


def build_root(
    root: str, scratch: str, scratch_bytes: int, owner: int | None, expose: list[str]
) -> None:
    """Make the tmpfs at ``root`` (an empty host dir) our root, holding only the allowed
    paths, ``expose`` and the private tmpfs ``scratch`` (of ``owner``); all read-only but
    ``scratch``. Run in the new mount and PID namespaces, before dropping privileges."""
    os.umask(0o022)  # dirs made below must be traversable by the sandbox uid
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)  # nothing leaks back out
    linux.mount("tmpfs", root, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, _ROOT_OPTIONS)
    for path in _outermost([*SYSTEM_PATHS, *DEVICES, *expose]):
        _bind(root, path)
    for link, target in _DEVICE_LINKS.items():
        os.symlink(target, root + link)
    os.makedirs(root + "/tmp", exist_ok=True)  # empty, for programs that expect it
    _mount_scratch(root + scratch, scratch_bytes, owner)
    _mount_private_proc(root + "/proc")
    _pivot(root)
    _make_readonly(keep=scratch)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` without those inside another of them (already bound with it)."""
    outer: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(_within(path, o) for o in outer):
            outer.append(path)
    return outer


def _bind(root: str, path: str) -> None:
    """The host's ``path`` at the same place under ``root``; absent paths are skipped."""
    if not os.path.lexists(path):
        return
    inside = root + path
    os.makedirs(os.path.dirname(inside), exist_ok=True)
    if os.path.islink(path):
        os.symlink(os.readlink(path), inside)  # its target is bound too, or dangles
        return
    if os.path.isdir(path):
        os.makedirs(inside, exist_ok=True)
    else:
        with open(inside, "a"):  # a mount point for a file (or device node)
            pass
    linux.mount(path, inside, None, linux.MS_BIND | linux.MS_REC)


def _mount_scratch(point: str, size: int, owner: int | None) -> None:
    """The only writable place: bounded in bytes and inodes, gone with the namespace."""
    os.makedirs(point, exist_ok=True)
    options = f"size={size},nr_inodes=4096,mode=0700"
    linux.mount("tmpfs", point, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, options)
    if owner is not None:
        os.chown(point, owner, owner)


def _mount_private_proc(point: str) -> None:
    """A /proc that shows only the sandbox's PID namespace (no host processes). Mounted
    before the pivot: in a user namespace the kernel wants the host's /proc in view."""
    os.makedirs(point, exist_ok=True)
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_RDONLY
    linux.mount("proc", point, "proc", flags)


def _pivot(root: str) -> None:
    """Make ``root`` the root and drop the host's tree (stacked on it by the pivot)."""
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")


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


def _make_readonly(keep: str) -> None:
    """Every mount but ``keep`` read-only, and checked to be."""
    for point, flags in _mounts().items():
        if point == keep:
            continue
        try:
            remount = flags | linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY
            linux.mount(None, point, None, remount)
        except OSError as e:
            # A path bound twice or covered by a later mount is not reachable.
            if e.errno not in (errno.EINVAL, errno.ENOENT):
                raise
    for point in _mounts():
        if point != keep and not os.statvfs(point).f_flag & os.ST_RDONLY:
            raise OSError(errno.EPERM, f"mount {point!r} is still writable")
