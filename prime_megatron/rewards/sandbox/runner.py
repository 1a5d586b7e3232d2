"""Parent side: run a program against test inputs in the sandbox and collect reports."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import prime_megatron

from . import cgroup
from .config import SandboxConfig
from .protocol import EXIT_ISOLATION_UNAVAILABLE, ProgramSpec, test_file, unpack_text

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(prime_megatron.__file__)))
# -S: no site (the sandbox needs only the stdlib and this package, put first on sys.path).
_BOOT = (
    "import sys; sys.path[0] = {root!r}; "
    "from prime_megatron.rewards.sandbox.bootstrap import main; main()"
)
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}

HOW_TO_ENABLE = (
    "Run as root (CAP_SYS_ADMIN), or enable unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0, or the "
    "AppArmor userns restriction off). Only if you accept running model-written code WITHOUT "
    "network and filesystem isolation, set rewards.sandbox.require_isolation=false."
)


class SandboxUnavailableError(RuntimeError):
    """The sandbox could not isolate itself, so it refused to run untrusted code."""


@dataclass(frozen=True)
class TestReport:
    """How one test run ended (the parent judges ``output`` against the expected value)."""

    index: int
    timed_out: bool
    exit_code: int | None = None
    signal: int | None = None
    flags: tuple[str, ...] = ()
    output: str = ""  # stdout (stdin/stdout tests) or the JSON return value (call-based)
    output_bytes: int = 0
    stderr_tail: str = ""


@dataclass(frozen=True)
class SandboxRun:
    isolation: str | None  # protocol.MODE_*; None if the harness never started
    reports: list[TestReport]  # shorter than the inputs if the run was cut short
    timed_out: bool  # the whole run hit total_timeout_s
    error: str = ""  # stderr of the sandbox itself when it failed
    syscall_filter: bool = False  # the seccomp filter was on (see seccomp.py)
    memory_limit: str = ""  # how the sandbox's total memory was bounded (cgroup.MEMORY_*)


def run_program(code: str, inputs: list, fn_name: str | None, cfg: SandboxConfig) -> SandboxRun:
    """Run ``code`` once per input: stdin text, or positional args when ``fn_name`` is set."""
    parent = cgroup.find_parent(cfg.cgroup_parent)
    group = cgroup.create(parent, cfg.total_memory_mb << 20) if parent else ""
    top = tempfile.mkdtemp(prefix="prime-sandbox-", dir=cfg.scratch_root or None)
    try:
        os.chmod(top, 0o711)  # the sandbox uid may traverse, not list
        spec = _write_inputs(top, code, inputs, fn_name, cfg, group)
        spec_path = os.path.join(top, "private", "spec.json")
        spec.dump(spec_path)
        return _launch(spec_path, spec.scratch, cfg.total_timeout_s)
    finally:
        if group:
            cgroup.remove(group)
        shutil.rmtree(top, ignore_errors=True)


def _write_inputs(
    top: str, code: str, inputs: list, fn_name, cfg: SandboxConfig, group: str
) -> ProgramSpec:
    scratch, inputs_dir, private, root = (
        os.path.join(top, d) for d in ("scratch", "inputs", "private", "root")
    )
    for directory in (scratch, private, root):
        os.mkdir(directory, 0o700)
    os.mkdir(inputs_dir, 0o755)
    if fn_name is None:
        for index, text in enumerate(inputs):
            with open(test_file(inputs_dir, "in", index), "w") as f:
                f.write(text)
    return ProgramSpec(
        code=code,
        scratch=scratch,
        inputs_dir=inputs_dir,
        limits=cfg.limits(),
        n_tests=len(inputs),
        scratch_bytes=cfg.scratch_mb << 20,
        max_output_bytes=cfg.max_output_kb << 10,
        fn_name=fn_name,
        call_args=list(inputs) if fn_name is not None else [],
        require_isolation=cfg.require_isolation,
        uid_base=cfg.uid_base,
        expose=_interpreter_dirs(),
        root=root,
        cgroup=group,
    )


def _interpreter_dirs() -> list[str]:
    """The Python installation the program imports its stdlib from. Not the venv nor this
    package: with -S the program needs neither, and the harness has imported all it uses
    before the host's tree is gone."""
    return sorted({os.path.realpath(d) for d in (sys.base_prefix, sys.base_exec_prefix)})


def _launch(spec_path: str, scratch: str, timeout_s: float) -> SandboxRun:
    private = os.path.dirname(spec_path)
    with (
        open(os.path.join(private, "results.jsonl"), "w+") as results,
        open(os.path.join(private, "stderr.txt"), "w+") as stderr,
    ):
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _BOOT.format(root=_PACKAGE_ROOT), spec_path],
            stdin=subprocess.DEVNULL,
            stdout=results,
            stderr=stderr,
            cwd=scratch,
            env={**_ENV, "HOME": scratch, "TMPDIR": scratch},
            start_new_session=True,  # its own process group, killed as a whole below
        )
        timed_out = _wait(proc, timeout_s)
        stderr.seek(0)
        error = stderr.read(4000)
        if proc.returncode == EXIT_ISOLATION_UNAVAILABLE:
            message = f"sandbox isolation failed: {error.strip()}\n{HOW_TO_ENABLE}"
            raise SandboxUnavailableError(message)
        results.seek(0)
        header, reports = _parse_results(results.read())
    return SandboxRun(
        header.get("isolation"),
        reports,
        timed_out,
        error if proc.returncode else "",
        syscall_filter=header.get("syscall_filter", False),
        memory_limit=header.get("memory", ""),
    )


def _wait(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for the bootstrap; past ``timeout_s`` kill its process group. The harness
    dies with the bootstrap (parent-death signal), the PID namespace with the harness.
    A bootstrap that exits by itself has already outlived the harness."""
    try:
        proc.wait(timeout=timeout_s)
        return False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # not reaped yet: the group id is still ours
        proc.wait()
        return True


def _parse_results(text: str) -> tuple[dict, list[TestReport]]:
    """The harness's first line (isolation mode, syscall filter), then one per test."""
    header, reports = {}, []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by the kill: everything after it is lost anyway
        if "isolation" in record:
            header = record
            continue
        flags = tuple(record.pop("flags", ()))
        record["output"] = unpack_text(record["output"])
        record["stderr_tail"] = unpack_text(record["stderr_tail"], tail=True)
        reports.append(TestReport(index=record.pop("test"), flags=flags, **record))
    return header, reports
