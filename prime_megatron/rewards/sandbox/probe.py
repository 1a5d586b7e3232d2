"""Fail closed, once per process: prove the sandbox isolates before any real program runs."""

import functools
import logging

from .cgroup import MEMORY_CGROUP
from .config import SandboxConfig
from .protocol import MODE_NONE
from .runner import SandboxUnavailableError, run_program

log = logging.getLogger(__name__)

# Lists network interfaces as the sandboxed program sees them: only "lo" when isolated.
_PROBE = "print(*sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))"


def check_isolation(cfg: SandboxConfig) -> str:
    """The isolation mode this machine gives; ``SandboxUnavailableError`` if it is not
    enough and ``cfg.require_isolation`` is set. Logs how total memory is bounded."""
    return _probe(
        cfg.require_isolation,
        cfg.scratch_root,
        cfg.uid_base,
        cfg.cgroup_parent,
        cfg.total_memory_mb,
    )


@functools.cache
def _probe(
    require_isolation: bool, scratch_root: str, uid_base: int, cgroup_parent: str, total_mb: int
) -> str:
    cfg = SandboxConfig(
        require_isolation=require_isolation,
        scratch_root=scratch_root,
        uid_base=uid_base,
        cgroup_parent=cgroup_parent,
        total_memory_mb=total_mb,
    )
    run = run_program(_PROBE, [""], None, cfg)  # raises when isolation is required but fails
    if not run.reports or run.reports[0].exit_code != 0:
        raise SandboxUnavailableError(f"sandbox probe did not run: {run.error.strip()}")
    interfaces = run.reports[0].output.split()
    if run.isolation != MODE_NONE and interfaces != ["lo"]:
        raise SandboxUnavailableError(f"sandbox still sees network interfaces {interfaces}")
    _report_memory_bound(run.memory_limit, total_mb)
    if run.isolation != MODE_NONE and not run.syscall_filter:
        log.warning(
            "No seccomp filter for this architecture: sandboxed code can still create user "
            "namespaces, use the kernel key syscalls and, without a cgroup, hold memory "
            "in memfds that no limit counts."
        )
    if run.isolation == MODE_NONE:
        log.warning(
            "Running model-written code WITHOUT network/filesystem isolation "
            "(rewards.sandbox.require_isolation=false): rlimits and timeouts only."
        )
    return run.isolation


def _report_memory_bound(memory_limit: str, total_mb: int) -> None:
    if memory_limit == MEMORY_CGROUP:
        log.info("Sandbox memory: each sandbox is a cgroup v2 with memory.max=%d MB.", total_mb)
        return
    log.warning(
        "Sandbox memory: no delegated cgroup v2 memory controller here (see "
        "rewards.sandbox.cgroup_parent), so memory is bounded per process "
        "(memory_mb x max_processes, plus scratch_mb and SysV IPC of memory_mb); "
        "memfd_create is refused."
    )
