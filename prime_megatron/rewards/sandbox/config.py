"""Sandbox limits and policy, as a config dataclass."""

from dataclasses import dataclass

from prime_megatron.config.errors import check

from .protocol import Limits

_MB = 1 << 20


@dataclass(frozen=True)
class SandboxConfig:
    # Refuse to run untrusted code when network/mount/PID/IPC namespaces cannot be created.
    # Setting this False runs programs with rlimits only: NO network or filesystem isolation.
    require_isolation: bool = True
    test_timeout_s: float = 4.0  # wall clock per test
    cpu_time_s: int = 2  # CPU seconds per test process
    total_timeout_s: float = 60.0  # wall clock for all tests of one program
    memory_mb: int = 512  # address space per process
    total_memory_mb: int = 1024  # memory.max of the sandbox's cgroup (where one is possible)
    cgroup_parent: str = ""  # delegated cgroup v2 dir for sandbox cgroups ("" = auto-detect)
    max_processes: int = 8  # processes + threads of the sandbox uid
    max_file_mb: int = 16  # largest file the program may write (stdout included)
    max_open_files: int = 64  # file descriptors per sandboxed process
    max_output_kb: int = 1024  # more stdout than this is a violation
    scratch_mb: int = 64  # the private tmpfs that is the only writable place
    scratch_root: str = ""  # where run dirs are made ("" = the system temp dir)
    uid_base: int = 100_000  # root only: programs run as uid_base + bootstrap pid

    def validate(self) -> None:
        for name in ("test_timeout_s", "total_timeout_s"):
            check(getattr(self, name) > 0, f"sandbox.{name}", getattr(self, name), "> 0")
        for name in ("cpu_time_s", "memory_mb", "max_file_mb", "max_output_kb", "scratch_mb"):
            check(getattr(self, name) >= 1, f"sandbox.{name}", getattr(self, name), ">= 1")
        check(self.max_processes >= 1, "sandbox.max_processes", self.max_processes, ">= 1")
        # The interpreter itself needs a handful of fds (stdio, flag pipe, result file).
        check(self.max_open_files >= 8, "sandbox.max_open_files", self.max_open_files, ">= 8")
        check(self.memory_mb >= 64, "sandbox.memory_mb", self.memory_mb, ">= 64 (Python)")
        total = self.total_memory_mb
        check(total >= self.memory_mb, "sandbox.total_memory_mb", total, ">= memory_mb")
        check(self.uid_base >= 1000, "sandbox.uid_base", self.uid_base, ">= 1000")

    def limits(self) -> Limits:
        return Limits(
            cpu_time_s=self.cpu_time_s,
            memory_bytes=self.memory_mb * _MB,
            max_processes=self.max_processes,
            max_file_bytes=self.max_file_mb * _MB,
            max_open_files=self.max_open_files,
            test_timeout_s=self.test_timeout_s,
        )
