"""What the parent and the sandboxed processes exchange: the run spec, file names, exit codes.

Kept stdlib-only and tiny: the bootstrap imports it before it isolates itself.
"""

import base64
import json
import os
from dataclasses import asdict, dataclass, field

# Bootstrap exit codes the parent turns into errors (anything else is the harness's own).
EXIT_ISOLATION_UNAVAILABLE = 125
EXIT_HARNESS_ERROR = 124

# Isolation modes the bootstrap reports in the first results line.
MODE_PRIVILEGED = "privileged"  # root: namespaces + a dedicated unprivileged uid
MODE_USERNS = "userns"  # unprivileged: a user namespace owning the other namespaces
MODE_NONE = "none"  # no namespaces (only when the user opted out of isolation)


@dataclass(frozen=True)
class Limits:
    """Per-test-process resource limits (setrlimit) and the per-test wall clock."""

    cpu_time_s: int
    memory_bytes: int
    max_processes: int
    max_file_bytes: int
    max_open_files: int
    test_timeout_s: float


@dataclass(frozen=True)
class ProgramSpec:
    """Everything the bootstrap and harness need, written as JSON outside the scratch dir."""

    code: str
    scratch: str  # mount point of the sandbox's private tmpfs (its only writable place)
    inputs_dir: str  # per-test stdin files, written by the parent, read-only inside
    limits: Limits
    n_tests: int
    scratch_bytes: int = 64 << 20
    max_output_bytes: int = 1 << 20
    fn_name: str | None = None  # call-based tests when set, stdin/stdout otherwise
    call_args: list = field(default_factory=list)  # per test: positional args (call-based)
    require_isolation: bool = True
    uid_base: int = 100_000
    expose: list = field(default_factory=list)  # host dirs bound (read-only) into the root
    root: str = ""  # an empty host dir: the sandbox's root tmpfs is mounted there
    cgroup: str = ""  # the sandbox's own cgroup v2 dir ("" = none: see cgroup.py)

    def dump(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(asdict(self), f)

    @classmethod
    def load(cls, path: str) -> "ProgramSpec":
        with open(path) as f:
            raw = json.load(f)
        return cls(**{**raw, "limits": Limits(**raw["limits"])})


def test_file(directory: str, kind: str, index: int) -> str:
    """Per-test file: kind is "in" (stdin), "out" (stdout or call result) or "err"."""
    return os.path.join(directory, f"{kind}_{index}.txt")


def pack_bytes(data: bytes) -> str:
    """Bytes for a JSON line as base64: 4/3 of their size whatever they hold, where a JSON
    string would spell each NUL or invalid UTF-8 byte as a six-byte escape."""
    return base64.b64encode(data).decode("ascii")


def unpack_text(packed: str, tail: bool = False) -> str:
    """The text of ``pack_bytes`` data, never longer in UTF-8 than the bytes were.

    Invalid sequences become U+FFFD (three bytes each) only while that fits, keeping the
    head (or, with ``tail``, the end); such output cannot match an expected text anyway,
    and its size must not grow with the garbage.
    """
    data = base64.b64decode(packed)
    encoded = data.decode(errors="replace").encode()
    if len(encoded) > len(data):
        encoded = encoded[-len(data) :] if tail else encoded[: len(data)]
    return encoded.decode(errors="ignore")
