"""Sandbox entry point, started by the parent as ``python -S -c <BOOT> <spec.json>``.

Process tree: parent -> bootstrap (this, still privileged) -> harness (PID 1 of a new PID
namespace, unprivileged) -> one forked child per test. The bootstrap isolates, forks the
harness into the namespaces and relays its exit status. If isolation is impossible and
the spec requires it, it exits with ``EXIT_ISOLATION_UNAVAILABLE`` before anything runs.
"""

import json
import os
import signal
import sys
import traceback

from . import cgroup, harness, isolate, linux, rootfs, seccomp
from .protocol import (
    EXIT_HARNESS_ERROR,
    EXIT_ISOLATION_UNAVAILABLE,
    MODE_NONE,
    MODE_USERNS,
    ProgramSpec,
)


def main() -> None:
    spec = ProgramSpec.load(sys.argv[1])
    results = os.fdopen(1, "w")
    _join_cgroup_or_exit(spec)
    mode = _isolate_or_exit(spec)
    refused = _unbounded_memory_syscalls(spec, mode)
    # Root runs the program as a uid no other process has (pids are unique), so process
    # counts and kill() permissions cover exactly this sandbox.
    uid = spec.uid_base + os.getpid() if os.geteuid() == 0 and mode != MODE_USERNS else None
    pid = os.fork()
    if pid == 0:
        # Now, for the isolation steps; the uid change clears it, so it is set again after.
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        _harness_process(spec, mode, uid, refused, results)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _join_cgroup_or_exit(spec: ProgramSpec) -> None:
    """Into the sandbox's cgroup first: all we start inherits it and its memory.max."""
    if not spec.cgroup:
        return
    try:
        cgroup.join(spec.cgroup)
    except OSError as e:
        print(f"cannot join the sandbox's cgroup {spec.cgroup}: {e}", file=sys.stderr)
        sys.exit(EXIT_ISOLATION_UNAVAILABLE)


def _unbounded_memory_syscalls(spec: ProgramSpec, mode: str) -> tuple[str, ...]:
    """Syscalls to refuse because no limit would count the memory they hold: none in a
    cgroup; else memfd_create, and the SysV ones if their namespace's sizes stay open."""
    if spec.cgroup:
        return ()
    # Never without an IPC namespace: these sysctls would be the host's.
    if mode != MODE_NONE and isolate.limit_ipc(spec.limits.memory_bytes):
        return ("memfd_create",)
    return ("memfd_create", "shmget", "msgget")


def _isolate_or_exit(spec: ProgramSpec) -> str:
    try:
        return isolate.enter_namespaces()
    except OSError as e:
        if spec.require_isolation:
            print(f"cannot create network/mount/PID/IPC namespaces: {e}", file=sys.stderr)
            sys.exit(EXIT_ISOLATION_UNAVAILABLE)
        return MODE_NONE


def _harness_process(
    spec: ProgramSpec, mode: str, uid: int | None, refused: tuple[str, ...], results
) -> None:
    """PID 1 of the sandbox (when namespaced): finish isolating, drop privileges, run tests."""
    try:
        filtered = _enter_sandbox(spec, mode, uid, refused)
    except BaseException:
        traceback.print_exc()
        os._exit(EXIT_ISOLATION_UNAVAILABLE)
    code = EXIT_HARNESS_ERROR
    try:
        memory = cgroup.MEMORY_CGROUP if spec.cgroup else cgroup.MEMORY_RLIMITS
        header = {"isolation": mode, "syscall_filter": filtered, "memory": memory}
        results.write(json.dumps(header) + "\n")
        results.flush()
        harness.run_tests(spec, results, own_pid_namespace=mode != MODE_NONE)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _enter_sandbox(spec: ProgramSpec, mode: str, uid: int | None, refused: tuple[str, ...]) -> bool:
    """Returns whether the seccomp filter is on (it is wherever the architecture has one)."""
    if mode != MODE_NONE:
        reachable = [*spec.expose, spec.inputs_dir]
        rootfs.build_root(spec.root, spec.scratch, spec.scratch_bytes, uid, reachable)
    os.chdir(spec.scratch)  # the tmpfs now mounted there, not the host dir underneath
    if mode == MODE_NONE:
        _drop_unisolated(spec.scratch, uid)
    else:
        isolate.drop_privileges(uid)
    # After the uid change (which resets both): die with the bootstrap, so the parent's
    # kill reaches us, and keep other processes of this uid out of our /proc fds.
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    # Where the seccomp filter cannot refuse the key syscalls, at least hold no keys.
    linux.join_new_session_keyring()
    # Last, once nothing of our own needs a refused syscall; no_new_privs is set by now.
    return seccomp.install(refused)


def _drop_unisolated(scratch: str, uid: int | None) -> None:
    """Opted out of isolation: still switch to the throwaway uid where we can (real
    root); without CAP_SETUID / CAP_CHOWN, clearing capabilities is all there is to drop."""
    if uid is not None:
        try:
            os.chown(scratch, uid, uid)
            isolate.drop_privileges(uid)
            return
        except OSError:
            pass
    isolate.drop_privileges(None)
