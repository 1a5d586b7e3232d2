"""Runs the program once per test, each in a forked, rlimited child; reports how each ended.

Runs inside the sandbox, already unprivileged. It never judges outputs: expected outputs
never enter the sandbox, the parent compares. Per test it writes one JSON line to the
results fd: exit code or signal, whether the wall clock ran out, audit flags, the
(capped) output and the tail of stderr.
"""

import builtins
import contextlib
import io
import json
import os
import select
import signal
import stat
import sys
import traceback

from . import audit, isolate
from .protocol import ProgramSpec, pack_bytes, test_file

_FLAG_FD, _RESULT_FD = 3, 4
_STDERR_TAIL = 2000
_MAX_FLAGS, _FLAG_CHARS = 8, 64  # the flag pipe is the program's to write: keep it small


def run_tests(spec: ProgramSpec, results: io.TextIOBase, own_pid_namespace: bool) -> None:
    # The program runs under our uid, so it may signal us. As PID 1 of the sandbox's PID
    # namespace the kernel drops every signal from inside it that we have no handler for
    # (SIGKILL and SIGSTOP included); Python's SIGINT handler is the only one we have.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    for index in range(spec.n_tests):
        report = _run_one(spec, index, own_pid_namespace)
        results.write(json.dumps(report) + "\n")
        results.flush()


def _run_one(spec: ProgramSpec, index: int, own_pid_namespace: bool) -> dict:
    flag_read, flag_write = os.pipe()
    os.set_blocking(flag_write, False)
    pid = os.fork()
    if pid == 0:
        os.close(flag_read)
        _child(spec, index, flag_write)  # never returns
    os.close(flag_write)
    _setpgid_quietly(pid)
    status, timed_out = _wait(pid, spec.limits.test_timeout_s)
    _kill_leftovers(pid, own_pid_namespace)
    flags = _read_all(flag_read).decode("ascii", errors="replace").split()[:_MAX_FLAGS]
    os.close(flag_read)
    report = {"test": index, "timed_out": timed_out, "flags": [f[:_FLAG_CHARS] for f in flags]}
    if os.WIFSIGNALED(status):
        report["signal"] = os.WTERMSIG(status)
    else:
        report["exit_code"] = os.waitstatus_to_exitcode(status)
    output, size = _take(_out(spec, index), spec.max_output_bytes + 1)
    tail, _ = _take(test_file(spec.scratch, "err", index), _STDERR_TAIL, tail=True)
    report.update(output=pack_bytes(output), output_bytes=size, stderr_tail=pack_bytes(tail))
    return report


def _take(path: str, limit: int, tail: bool = False) -> tuple[bytes, int]:
    """Up to ``limit`` bytes of a regular file (head, or tail), its size; then delete it.

    The program may have swapped the file for a symlink or FIFO: those read as empty.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b"", 0
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return b"", 0
        if tail:
            os.lseek(fd, max(0, info.st_size - limit), os.SEEK_SET)
        return os.read(fd, limit), info.st_size
    finally:
        os.close(fd)
        os.unlink(path)  # frees the small scratch tmpfs for the next test


def _wait(pid: int, timeout_s: float) -> tuple[int, bool]:
    """Wait for ``pid`` at most ``timeout_s`` of wall time; SIGKILL its group after that."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout_s)
    finally:
        os.close(pidfd)
    if not ready:
        _killpg(pid)
    _, status = os.waitpid(pid, 0)
    return status, not ready


def _setpgid_quietly(pid: int) -> None:
    """Also set the child's group from here, so a kill right after fork cannot miss it."""
    with contextlib.suppress(OSError):  # the child did it first, or already exited
        os.setpgid(pid, pid)


def _kill_leftovers(pid: int, own_pid_namespace: bool) -> None:
    """Nothing a test started may outlive it (daemons, setsid escapees, fork bombs)."""
    if own_pid_namespace:
        # As PID 1 of the sandbox's namespace, kill(-1) reaches every other process in it,
        # and nothing outside it.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return
    _killpg(pid)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while len(chunks) < 16:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _child(spec: ProgramSpec, index: int, flag_fd: int) -> None:
    """Forked test process: limits, fds, audit hook, then the untrusted program.

    Whatever happens it ends in ``os._exit``: it must never return into the harness loop.
    """
    exit_code = 1
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in any Python program
        isolate.apply_limits(spec.limits)
        _setup_fds(spec, index, flag_fd)
        audit.install(spec.scratch, _FLAG_FD)
        exit_code = _execute(spec, index)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        _flush_quietly()
        os._exit(exit_code)


def _setup_fds(spec: ProgramSpec, index: int, flag_fd: int) -> None:
    calls = spec.fn_name is not None
    stdin = os.devnull if calls else test_file(spec.inputs_dir, "in", index)
    out = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fds = [
        os.open(stdin, os.O_RDONLY),
        # Call-based tests: prints are noise, the return value goes to the results file.
        os.open(os.devnull, os.O_WRONLY) if calls else os.open(_out(spec, index), out, 0o600),
        os.open(test_file(spec.scratch, "err", index), out, 0o600),
        flag_fd,
        os.open(_out(spec, index), out, 0o600) if calls else os.open(os.devnull, os.O_WRONLY),
    ]
    moved = [os.dup(fd) for fd in fds]  # dup first so dup2 below cannot clobber a source
    for target, fd in enumerate(moved):
        os.dup2(fd, target)
    os.closerange(len(moved), 1 << 16)
    # Fresh stdio objects on the new fds (no buffered state inherited from the harness);
    # they live until os._exit, so no context manager.
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def _out(spec: ProgramSpec, index: int) -> str:
    return test_file(spec.scratch, "out", index)


def _execute(spec: ProgramSpec, index: int) -> int:
    """Run the program; returns the process exit code. Compiled here, in the limited
    child: a syntax error is that test's crash, and a compiler-crashing program cannot
    take the harness down."""
    code = compile(spec.code, "solution.py", "exec")
    if spec.fn_name is None:
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        try:
            exec(code, namespace)
        except SystemExit as e:
            return _exit_code(e.code)
        return 0
    namespace = {"__name__": "solution", "__builtins__": builtins}
    exec(code, namespace)
    result = _resolve(namespace, spec.fn_name)(*spec.call_args[index])
    os.write(_RESULT_FD, json.dumps(result, default=_jsonable).encode())
    return 0


def _resolve(namespace: dict, fn_name: str):
    """A top-level function (TACO/APPS) or a method of ``Solution`` (LeetCode)."""
    if callable(namespace.get(fn_name)):
        return namespace[fn_name]
    return getattr(namespace["Solution"](), fn_name)


def _jsonable(value: object) -> object:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (tuple, range)):
        return list(value)
    return repr(value)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
