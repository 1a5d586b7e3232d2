"""The sandbox against adversarial programs: each is contained, scores 0, and leaves the
test process and the machine as they were. Also: it runs honest programs, and it fails
closed where the kernel gives no namespaces."""

import dataclasses
import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import pytest

from prime_megatron.rewards.code_verifier import score_code
from prime_megatron.rewards.sandbox import cgroup, probe, runner
from prime_megatron.rewards.sandbox.config import SandboxConfig
from prime_megatron.rewards.sandbox.runner import run_program
from prime_megatron.rewards.verdict import CRASH, OK, SANDBOX_VIOLATION, TIMEOUT

CFG = SandboxConfig(
    test_timeout_s=1.0, cpu_time_s=1, total_timeout_s=20, memory_mb=256, max_output_kb=64
)
ADD = json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3", "7"]})
ONE_TEST = json.dumps({"inputs": ["1 2\n"], "outputs": ["3"]})
# Spawns a process through _posixsubprocess, which raises no audit event: what such a
# program meets is the kernel's limits alone.
UNAUDITED_SHELL = """
import _posixsubprocess, os
def sh(cmd):
    r, w = os.pipe()
    pid = _posixsubprocess.fork_exec([b"/bin/sh", b"-c", cmd.encode()], [b"/bin/sh"], True,
        (), None, None, -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None, None, None, -1,
        None, False)
    return os.waitpid(pid, 0)[1]
"""


def python(code: str) -> str:
    return f"```python\n{textwrap.dedent(code)}\n```"


def sandbox_processes() -> list[int]:
    """Host processes running under a sandbox uid (there must be none between runs)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid >= CFG.uid_base:
                pids.append(int(entry))
        except FileNotFoundError:
            pass
    return pids


def sysv_objects(kind: str) -> list[dict[str, int]]:
    """The host's SysV IPC objects of ``kind`` ("shm", "msg", "sem"), as /proc lists them."""
    with open(f"/proc/sysvipc/{kind}") as f:
        header, *rows = (line.split() for line in f)
    return [dict(zip(header, map(int, row), strict=False)) for row in rows]


def sandbox_ipc_objects() -> list[tuple[str, int]]:
    """Host SysV IPC objects owned by a sandbox uid (there must be none between runs)."""
    return [
        (kind, obj["key"])
        for kind in ("shm", "msg", "sem")
        for obj in sysv_objects(kind)
        if obj["cuid"] >= CFG.uid_base
    ]


@pytest.fixture(autouse=True)
def nothing_escapes():
    yield
    deadline = time.monotonic() + 2
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes() == []
    assert sandbox_ipc_objects() == []


def score(program: str, ground_truth: str = ONE_TEST):
    return score_code(python(program), ground_truth, CFG)


def test_honest_stdin_program_passes():
    verdict = score("a, b = map(int, input().split())\nprint(a + b)", ADD)
    assert (verdict.score, verdict.status, verdict.detail) == (1.0, OK, "passed,passed")


def test_partial_credit_is_the_fraction_passed():
    verdict = score("a, b = map(int, input().split())\nprint(3)", ADD)
    assert (verdict.score, verdict.status, verdict.detail) == (0.5, OK, "passed,wrong")


def test_call_based_function_and_leetcode_class():
    gt = json.dumps(
        {
            "fn_name": "twoSum",
            "inputs": [[[2, 7, 11], 9], [[3, 3], 6]],
            "outputs": [[0, 1], [[0, 1]]],
        }
    )
    leetcode = """
    class Solution:
        def twoSum(self, nums, target):
            seen = {}
            for i, x in enumerate(nums):
                if target - x in seen:
                    return [seen[target - x], i]
                seen[x] = i
    """
    assert score(leetcode, gt).score == 1.0
    function = "def twoSum(nums, target):\n    print('debug output is ignored')\n    return (0, 1)"
    assert score(function, gt).score == 1.0


def test_scratch_is_writable_and_is_the_working_dir():
    program = """
    import os
    open("notes.txt", "w").write("3")
    os.makedirs("d/e")
    print(open(os.path.join(os.getcwd(), "notes.txt")).read())
    """
    assert score(program).score == 1.0


@pytest.mark.parametrize(
    "name,program,status",
    [
        ("fork bomb", "import os\nwhile True:\n    os.fork()", SANDBOX_VIOLATION),
        ("subprocess", "import subprocess\nsubprocess.run(['ls'])", SANDBOX_VIOLATION),
        ("memory bomb", "x = [bytearray(1 << 20) for _ in range(10_000)]", CRASH),
        ("infinite loop", "while True:\n    pass", TIMEOUT),
        ("sleep past timeout", "import time\ntime.sleep(30)", TIMEOUT),
        ("output flood", "while True:\n    print('x' * 4096)", SANDBOX_VIOLATION),
        (
            "socket",
            "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)",
            SANDBOX_VIOLATION,
        ),
        ("dns", "import socket\nsocket.getaddrinfo('example.com', 80)", SANDBOX_VIOLATION),
        ("kill the parent", "import os\nos.kill(os.getppid(), 9)", SANDBOX_VIOLATION),
        ("ctypes", "import ctypes\nctypes.CDLL(None).fork()", SANDBOX_VIOLATION),
        ("recursion", "def f(n):\n    return f(n + 1)\nf(0)", CRASH),
        ("syntax error", "def f(:", CRASH),
        ("fd exhaustion", "fs = [open(f'f{i}', 'w') for i in range(1000)]", CRASH),
        ("disk fill", "open('big', 'wb').write(bytes(100 << 20))", CRASH),
    ],
)
def test_adversarial_program_is_contained_and_scores_zero(name, program, status):
    start = time.monotonic()
    verdict = score(program + "\nprint(3)")  # would pass if it got that far
    assert (verdict.score, verdict.status) == (0.0, status), verdict
    assert time.monotonic() - start < 10


def test_write_outside_scratch_is_refused_and_leaves_no_file():
    target = f"/tmp/prime-sandbox-escape-{uuid.uuid4().hex}"
    verdict = score(f"open({target!r}, 'w').write('pwned')\nprint(3)")
    assert (verdict.score, verdict.status) == (0.0, SANDBOX_VIOLATION)
    assert not os.path.exists(target)


def test_kernel_refuses_writes_even_without_the_audit_hook():
    target = f"/tmp/prime-sandbox-escape-{uuid.uuid4().hex}"
    program = UNAUDITED_SHELL + f"print(sh('echo pwned > {target}; echo $?'))"
    run = run_program(program, [""], None, CFG)
    assert run.reports[0].exit_code == 0
    assert not os.path.exists(target)
    assert "Read-only file system" in run.reports[0].stderr_tail


def test_kernel_contains_an_unaudited_shell_fork_bomb():
    start = time.monotonic()
    run = run_program(UNAUDITED_SHELL + "sh('f(){ f|f& }; f; wait')", [""], None, CFG)
    assert "Cannot fork" in run.reports[0].stderr_tail  # RLIMIT_NPROC said no
    assert time.monotonic() - start < 10  # and nothing_escapes: no bomb process survives


def test_unaudited_kill_of_everything_reaches_only_the_sandbox():
    me = os.getpid()
    program = UNAUDITED_SHELL + f"sh('kill -9 {me} -1 1 2>/dev/null; echo alive')\nprint(3)"
    score(program)
    assert os.getpid() == me  # still here: the test process was never in reach


def test_daemon_started_with_setsid_dies_with_the_test():
    program = UNAUDITED_SHELL + "sh('setsid sleep 300 >/dev/null 2>&1 &')\nprint(3)"
    assert score(program).score == 1.0  # nothing_escapes checks no sleep survived


def test_program_sees_no_network_no_host_processes_no_privileges():
    program = r"""
    import os
    nets = sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:])
    pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
    caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')]
    print(nets, pids, os.getuid() != 0, caps)
    """
    run = run_program(textwrap.dedent(program), [""], None, CFG)
    assert run.isolation in ("privileged", "userns")
    assert run.reports[0].output.strip() == "['lo'] [1, 2] True ['0000000000000000']"


def test_private_files_of_the_parent_user_are_unreadable(tmp_path):
    secret_dir = tmp_path / "private"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "key").write_text("s3cret")
    run = run_program(f"print(open({str(secret_dir / 'key')!r}).read())", [""], None, CFG)
    assert run.reports[0].exit_code == 1
    assert "s3cret" not in run.reports[0].output
    # Under /tmp (pytest's usual tmp_path) the file is hidden outright; elsewhere the
    # sandbox uid may not enter the 0700 dir.
    error = run.reports[0].stderr_tail.splitlines()[-1]
    assert error.startswith(("PermissionError", "FileNotFoundError")), error


def test_whole_run_timeout_scores_the_unreached_tests_as_timeouts():
    cfg = SandboxConfig(test_timeout_s=1.0, cpu_time_s=1, total_timeout_s=1.5)
    many = json.dumps({"inputs": ["\n"] * 4, "outputs": ["1"] * 4})
    verdict = score_code(python("import time\ntime.sleep(5)"), many, cfg)
    assert (verdict.score, verdict.status) == (0.0, TIMEOUT)
    assert verdict.detail.split(",") == ["timeout"] * 4


def run_in_restricted_namespace(require_isolation: bool) -> subprocess.CompletedProcess:
    """Run a scoring call in a user namespace that may create no further namespaces and
    holds no capabilities: a kernel that allows no sandbox."""
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {os.getcwd()!r})
        from prime_megatron.rewards.code_verifier import score_code
        from prime_megatron.rewards.sandbox.config import SandboxConfig
        cfg = SandboxConfig(require_isolation={require_isolation})
        v = score_code("```python\\nprint(int(input()) + 1)\\n```",
                       {{"inputs": ["1\\n"], "outputs": ["2"]}}, cfg)
        print(json.dumps([v.score, v.status]))
        """
    )
    inner = (
        "echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --bounding-set=-all "
        f'--inh-caps=-all {sys.executable} -c "$0"'
    )
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", inner, script],
        capture_output=True,
        text=True,
        timeout=60,
    )


needs_unshare = pytest.mark.skipif(
    shutil.which("unshare") is None or shutil.which("setpriv") is None,
    reason="needs util-linux unshare and setpriv",
)


@needs_unshare
def test_fails_closed_without_namespaces():
    result = run_in_restricted_namespace(require_isolation=True)
    assert result.returncode != 0
    assert "SandboxUnavailableError" in result.stderr
    assert "cannot create network/mount/PID/IPC namespaces" in result.stderr
    assert "require_isolation=false" in result.stderr  # says how to opt out, and the risk


@needs_unshare
def test_explicit_opt_out_runs_without_isolation():
    result = run_in_restricted_namespace(require_isolation=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [1.0, OK]
    assert "WITHOUT network/filesystem isolation" in result.stderr


# The interpreter must be able to start itself again (the sandbox re-executes
# sys.executable), which a venv whose base Python lives under /root may not allow.
_RELAUNCH = "import subprocess, sys; subprocess.run([sys.executable, '-c', ''], check=True)"


def _interpreter_for(uid: int) -> str | None:
    """A Python the unprivileged ``uid`` may execute, or None."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (sys.executable, f"/usr/bin/python{version}"):
        user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        probe = subprocess.run([*user, candidate, "-c", _RELAUNCH], capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


@needs_unshare
def test_unprivileged_user_gets_a_user_namespace_sandbox():
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    interpreter = _interpreter_for(65534)
    if interpreter is None:
        pytest.skip("no Python executable by an unprivileged user")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from prime_megatron.rewards.sandbox.config import SandboxConfig
        from prime_megatron.rewards.sandbox.runner import run_program
        code = "import os; print(open('/proc/net/dev').read().count(':'), os.listdir('/proc')[:0])"
        run = run_program(code + "\\nopen('/tmp/x-userns', 'w')", [""], None, SandboxConfig())
        print(run.isolation, run.reports[0].output.strip(), run.reports[0].flags)
        """
    )
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = subprocess.run(
        [*user, interpreter, "-c", script], capture_output=True, text=True, timeout=60
    )
    if "cannot create network/mount/PID/IPC namespaces" in result.stderr:
        pytest.skip("unprivileged user namespaces are disabled here")
    assert result.stdout.split() == ["userns", "1", "[]", "('open',)"], result.stderr


# Neutralises the audit hook from inside the program: the hook is a closure reachable
# through gc, and rewriting its ``forbidden`` cell makes it allow everything. The proof it
# worked is an AF_INET socket, which only the hook refuses (the network namespace is what
# makes such a socket useless). What the program meets afterwards is the kernel alone.
DISABLE_AUDIT_HOOK = """
import gc, socket
def disable_audit_hook():
    for obj in gc.get_objects():
        if getattr(obj, "__qualname__", "") == "install.<locals>.hook":
            cells = dict(zip(obj.__code__.co_freevars, obj.__closure__))
            cells["forbidden"].cell_contents = lambda event, args: False
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()  # PermissionError if not
    print("audit hook disabled")
disable_audit_hook()
"""


def _host_socket_dirs() -> list[str]:
    """World-writable host dirs where other programs keep their unix sockets."""
    return [d for d in ("/tmp", "/dev/shm") if os.path.isdir(d) and os.access(d, os.W_OK)]


@pytest.fixture
def host_unix_sockets():
    """Per host dir a listening stream socket and a datagram socket, both mode 0777:
    anyone on the host may connect to or send to them."""
    sockets = []
    for directory in _host_socket_dirs():
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            path = os.path.join(directory, f"prime-sandbox-sock-{uuid.uuid4().hex}")
            sock = socket.socket(socket.AF_UNIX, kind)
            sock.bind(path)
            os.chmod(path, 0o777)
            if kind == socket.SOCK_STREAM:
                sock.listen()
            sock.setblocking(False)
            sockets.append((path, sock))
    yield sockets
    for path, sock in sockets:
        sock.close()
        os.unlink(path)


def _received_anything(sock: socket.socket) -> bool:
    try:
        if sock.type == socket.SOCK_STREAM:
            sock.accept()[0].close()
        else:
            sock.recv(64)
    except BlockingIOError:
        return False
    return True


# Every way to reach a path-named unix socket: connect a stream socket to a listener; send
# to a datagram socket from an unbound datagram socket or from a socketpair. Prints one
# outcome per attempt: "sent" or the error's name.
UNIX_SOCKET_ATTACK = """
import json, socket
def stream(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"pwned")
def dgram(path):
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"pwned", path)
def pair(path):
    socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)[0].sendto(b"pwned", path)
ATTACKS = {socket.SOCK_STREAM: [stream], socket.SOCK_DGRAM: [dgram, pair]}
outcomes = {}
for kind, path in TARGETS:
    for attack in ATTACKS[kind]:
        try:
            attack(path)
            outcomes[f"{attack.__name__} {path}"] = "sent"
        except OSError as e:
            outcomes[f"{attack.__name__} {path}"] = type(e).__name__
print(json.dumps(outcomes))
"""


def test_host_unix_sockets_are_unreachable_without_the_audit_hook(host_unix_sockets):
    targets = [(int(sock.type), path) for path, sock in host_unix_sockets]
    program = DISABLE_AUDIT_HOOK + f"TARGETS = {targets!r}\n" + UNIX_SOCKET_ATTACK
    report = run_program(program, [""], None, CFG).reports[0]
    assert report.exit_code == 0, report.stderr_tail
    hook_line, outcomes_line = report.output.splitlines()
    assert hook_line == "audit hook disabled" and report.flags == ()
    outcomes = json.loads(outcomes_line)
    assert len(outcomes) == 3 * len(_host_socket_dirs())
    assert "sent" not in outcomes.values(), outcomes
    assert [path for path, sock in host_unix_sockets if _received_anything(sock)] == []


# Raw syscall numbers (clone takes its flags first on both; clone3 and io_uring_setup
# are shared by all architectures).
_CLONE_SYSCALL = {"x86_64": 56, "aarch64": 220}
_CLONE3, _IO_URING_SETUP = 435, 425

# Helpers for raw syscalls through ctypes (which only the audit hook refuses, so each
# program disables it first); an outcome prints as "created" or the kernel's error message.
RAW_SYSCALLS = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
def outcome(result):
    return "created" if result >= 0 else os.strerror(ctypes.get_errno())
def forked(pid):
    if pid == 0:
        os._exit(0)  # a cloned child: leave at once
    if pid > 0:
        os.waitpid(pid, 0)
    return outcome(pid)
"""


def _skip_without_syscall_filter() -> str:
    machine = os.uname().machine
    if machine not in _CLONE_SYSCALL:
        pytest.skip(f"no syscall filter for {machine}: the kernel alone decides")
    return machine


def _raw_syscall_outcomes(program: str, helpers: str = RAW_SYSCALLS) -> list[str]:
    """Run ``program`` with the audit hook off and ``helpers`` loaded; its last output
    line, split on ","."""
    code = DISABLE_AUDIT_HOOK + helpers + textwrap.dedent(program)
    report = run_program(code, [""], None, CFG).reports[0]
    assert report.exit_code == 0, report.stderr_tail
    hook_line, outcomes = report.output.splitlines()
    assert hook_line == "audit hook disabled"
    return outcomes.split(",")


def test_program_cannot_create_a_user_namespace():
    machine = _skip_without_syscall_filter()
    program = f"""
    # clone3 passes its flags behind a pointer the filter cannot read.
    clone3_args = (ctypes.c_uint64 * 8)(CLONE_NEWUSER, 0, 0, 0, SIGCHLD, 0, 0, 0)
    # Both clones before unshare: after a successful unshare our uid has no mapping, and
    # that alone would make a clone fail.
    outcomes = [
        forked(libc.syscall({_CLONE_SYSCALL[machine]}, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)),
        forked(libc.syscall({_CLONE3}, ctypes.byref(clone3_args), ctypes.sizeof(clone3_args))),
    ]
    try:
        if hasattr(os, "unshare"):  # Python 3.12+
            os.unshare(os.CLONE_NEWUSER)
        elif libc.unshare(CLONE_NEWUSER) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        outcomes.append("created")
    except OSError as e:
        outcomes.append(e.strerror)
    print(*outcomes, sep=",")
    """
    refused, unknown = os.strerror(errno.EPERM), os.strerror(errno.ENOSYS)
    assert _raw_syscall_outcomes(program) == [refused, unknown, refused]


def test_io_uring_is_refused():
    # io_uring creates and connects sockets without the socket syscalls the filter checks.
    _skip_without_syscall_filter()
    program = f"""
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, all zero
    fd = libc.syscall({_IO_URING_SETUP}, 8, params)
    print(outcome(fd))
    """
    assert _raw_syscall_outcomes(program) == [os.strerror(errno.EPERM)]


def test_only_ip_sockets_can_be_created_without_the_audit_hook():
    # vsock is a VM's line to its host and no namespace confines it; unix sockets reach
    # host paths; the rest is kernel attack surface no solution needs.
    _skip_without_syscall_filter()
    families = ["AF_UNIX", "AF_VSOCK", "AF_PACKET", "AF_NETLINK", "AF_INET6"]
    program = DISABLE_AUDIT_HOOK + textwrap.dedent(
        f"""
        outcomes = []
        for name in {families!r}:
            try:
                socket.socket(getattr(socket, name), socket.SOCK_DGRAM).close()
                outcomes.append("created")
            except OSError as e:
                outcomes.append(type(e).__name__)
        print(*outcomes)
        """
    )
    report = run_program(program, [""], None, CFG).reports[0]
    assert report.output.splitlines()[1].split() == ["PermissionError"] * 4 + ["created"]


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x32 is an x86_64 ABI")
def test_a_syscall_of_another_abi_kills_the_program():
    # x32 syscall numbers (bit 30 set) would bypass checks written for native numbers.
    program = DISABLE_AUDIT_HOOK + "import ctypes\nctypes.CDLL(None).syscall(0x40000000 | 39)"
    report = run_program(program + "\nprint('survived')", [""], None, CFG).reports[0]
    assert report.signal == signal.SIGSYS and "survived" not in report.output


def test_threads_asyncio_and_stream_socketpairs_still_work():
    # asyncio's event loop needs a unix stream socketpair; threads make glibc try clone3.
    program = """
    import asyncio, threading
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b
    out = []
    worker = threading.Thread(target=lambda: out.append(asyncio.run(add(1, 2))))
    worker.start()
    worker.join()
    print(out[0])
    """
    assert score(program).score == 1.0


@pytest.fixture
def host_shared_files():
    """A file in each world-writable host dir, as other programs leave there."""
    paths = [os.path.join(d, f"prime-sandbox-host-{uuid.uuid4().hex}") for d in _host_socket_dirs()]
    for path in paths:
        with open(path, "w") as f:
            f.write("host")
    yield paths
    for path in paths:
        os.unlink(path)


def test_host_shared_dirs_are_empty_inside(host_shared_files):
    # Only the way down to what the sandbox binds back may show: the program's scratch dir,
    # the interpreter and the package dirs (a checkout or venv may itself live in /tmp).
    program = """
    import json, os, sys
    kept = [os.getcwd(), sys.prefix, sys.base_prefix, *sys.path]
    def foreign(d):
        return [e for e in os.listdir(d)
                if not any((p + "/").startswith(os.path.join(d, e) + "/") for p in kept if p)]
    dirs = ["/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm"]
    print(json.dumps({d: foreign(d) for d in dirs if os.path.isdir(d)}))
    """
    report = run_program(textwrap.dedent(program), [""], None, CFG).reports[0]
    assert report.exit_code == 0, report.stderr_tail
    listings = json.loads(report.output)
    assert host_shared_files and "/tmp" in listings
    assert listings == {d: [] for d in listings}


def test_a_near_miss_integer_scores_zero():
    # 999999000 is within a relative 1e-6 of the answer, but it is a wrong answer.
    near_miss = json.dumps({"inputs": ["\n", "\n"], "outputs": ["999999937", "0.5"]})
    verdict = score_code(python("print(999999000)"), near_miss, CFG)
    assert (verdict.score, verdict.detail) == (0.0, "wrong,wrong")
    floats = json.dumps({"inputs": ["\n"], "outputs": ["0.5"]})
    assert score_code(python("print(0.50000001)"), floats, CFG).score == 1.0


def test_output_that_is_not_utf8_crosses_to_the_parent_without_growing(monkeypatch):
    # Each invalid byte once became "\ufffd" in the harness's JSON: six bytes per byte.
    crossed = []
    parse = runner._parse_results
    monkeypatch.setattr(runner, "_parse_results", lambda text: crossed.append(text) or parse(text))
    cap = 1 << 20
    cfg = dataclasses.replace(CFG, max_output_kb=cap >> 10, max_file_mb=4)
    program = (
        DISABLE_AUDIT_HOOK + "import os, sys\nsys.stdout.flush()\nos.write(1, b'\\xff' * (1 << 20))"
    )
    run = run_program(program, ["", ""], None, cfg)
    assert [r.output_bytes for r in run.reports] == [cap + len("audit hook disabled\n")] * 2
    for report in run.reports:
        assert len(report.output.encode()) <= report.output_bytes
        assert len(report.stderr_tail.encode()) <= 2000
    # What crosses is at most the capped bytes in base64 (4/3) plus a little JSON.
    assert len(crossed[0]) <= 2 * (4 * (cap + 1) // 3 + 4096)


def test_signals_to_the_harness_cost_the_program_no_test():
    # The harness runs the tests as PID 1 of the sandbox, under the program's uid: a
    # SIGINT once raised KeyboardInterrupt there and every later test was lost.
    signals = ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGQUIT", "SIGSTOP", "SIGKILL"]
    program = DISABLE_AUDIT_HOOK + textwrap.dedent(
        f"""
        import os, signal, time
        for name in {signals!r}:
            os.kill(1, getattr(signal, name))
        time.sleep(0.1)  # time for a handler in the harness to run
        a, b = map(int, input().split())
        print(a + b)
        """
    )
    inputs, sums = ["1 2\n", "3 4\n", "5 6\n"], ["3", "7", "11"]
    expected = [f"audit hook disabled\n{s}" for s in sums]
    ground_truth = json.dumps({"inputs": inputs, "outputs": expected})
    verdict = score_code(python(program), ground_truth, CFG)
    assert (verdict.score, verdict.detail) == (1.0, "passed,passed,passed")


# Raw key syscalls (no libc wrapper): add_key, request_key, keyctl.
_KEY_SYSCALLS = {"x86_64": (248, 249, 250), "aarch64": (217, 218, 219)}

# Against the session keyring (-3) and user keyring (-4) it was started with, the program
# lists, finds, reads and overwrites the parent's key and plants its own; one outcome
# each, "done" or the kernel's error.
KEYRING_ATTACK = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ADD_KEY, REQUEST_KEY, KEYCTL = {numbers}
SEARCH, READ, UPDATE = 10, 11, 2
L = ctypes.c_long
def outcome(result):
    return "done" if result >= 0 else os.strerror(ctypes.get_errno())
buf = ctypes.create_string_buffer(256)
key = libc.syscall(L(REQUEST_KEY), b"user", b"prime-sandbox-secret", None, L(0))
found = libc.syscall(L(KEYCTL), L(SEARCH), L(-3), b"user", b"prime-sandbox-secret", L(0))
print(*[
    outcome(libc.syscall(L(KEYCTL), L(READ), L(-3), buf, L(256))),
    outcome(key), outcome(found),
    outcome(libc.syscall(L(KEYCTL), L(READ), L(max(key, found)), buf, L(256))),
    outcome(libc.syscall(L(KEYCTL), L(UPDATE), L(max(key, found)), b"pwned", L(5))),
    outcome(libc.syscall(L(ADD_KEY), b"user", b"planted", b"x", L(1), L(-3))),
    outcome(libc.syscall(L(ADD_KEY), b"user", b"planted", b"x", L(1), L(-4))),
], sep=",")
"""

# The scoring process: a fresh session keyring holding one key, then the program, then
# what became of the key. The keyring dies with this process.
KEYRING_PARENT = """
import ctypes, json, sys
sys.path.insert(0, {root!r})
from prime_megatron.rewards.sandbox.config import SandboxConfig
from prime_megatron.rewards.sandbox.runner import run_program
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ADD_KEY, REQUEST_KEY, KEYCTL = {numbers}
L = ctypes.c_long
assert libc.syscall(L(KEYCTL), L(1), None) > 0  # KEYCTL_JOIN_SESSION_KEYRING, anonymous
key = libc.syscall(L(ADD_KEY), b"user", b"prime-sandbox-secret", b"s3cret", L(6), L(-3))
assert key > 0
report = run_program({program!r}, [""], None, SandboxConfig(**{cfg!r})).reports[0]
payload = ctypes.create_string_buffer(64)
size = libc.syscall(L(KEYCTL), L(11), L(key), payload, L(64))
planted = libc.syscall(L(KEYCTL), L(10), L(-3), b"user", b"planted", L(0))
print(json.dumps([report.output, report.stderr_tail, payload.raw[:size].decode(), planted]))
"""


def test_program_cannot_touch_the_trainers_keyring():
    numbers = _KEY_SYSCALLS.get(os.uname().machine)
    if numbers is None:
        pytest.skip("no key syscall numbers for this architecture")
    program = DISABLE_AUDIT_HOOK + KEYRING_ATTACK.format(numbers=numbers)
    cfg = {"test_timeout_s": 2.0, "memory_mb": 256}
    parent = KEYRING_PARENT.format(root=os.getcwd(), numbers=numbers, program=program, cfg=cfg)
    result = subprocess.run(
        [sys.executable, "-c", parent], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    output, stderr_tail, payload, planted = json.loads(result.stdout)
    hook_line, outcomes = output.splitlines()
    assert hook_line == "audit hook disabled", stderr_tail
    assert "done" not in outcomes.split(","), outcomes
    assert (payload, planted) == ("s3cret", -1)  # untouched, and nothing planted


# SysV IPC through ctypes, for the test process and (audit hook off) for programs.
SYSV_IPC = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IPC_CREAT, IPC_RMID, IPC_NOWAIT, SHM_RDONLY = 0o1000, 0, 0o4000, 0o10000
def outcome(result):
    return "done" if result >= 0 else os.strerror(ctypes.get_errno())
def shm_create(key, size, mode):
    return libc.shmget(key, ctypes.c_size_t(size), IPC_CREAT | mode)
def shm_read(key, size):
    shmid = libc.shmget(key, ctypes.c_size_t(0), 0)
    if shmid < 0:
        return outcome(shmid)
    address = libc.shmat(shmid, None, SHM_RDONLY)
    if address in (None, 2**64 - 1):  # (void *) -1
        return outcome(-1)
    return ctypes.string_at(address, size).decode()
class Message(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 64)]
def msg_send(key, text):
    qid = libc.msgget(key, IPC_CREAT | 0o666)
    message = Message(1, text.encode())
    return outcome(qid if qid < 0 else libc.msgsnd(qid, ctypes.byref(message), 64, IPC_NOWAIT))
def msg_receive(key):
    qid = libc.msgget(key, 0)
    message = Message()
    got = qid if qid < 0 else libc.msgrcv(qid, ctypes.byref(message), 64, 0, IPC_NOWAIT)
    return message.mtext.decode() if got >= 0 else outcome(got)
"""
_ipc = {}
exec(SYSV_IPC, _ipc)


def _remove_sysv(kind: str, key: int) -> None:
    """Remove the host's object of ``key``: the test's own, or one a sandbox leaked."""
    get, ctl = {"shm": ("shmget", "shmctl"), "msg": ("msgget", "msgctl")}[kind]
    libc = _ipc["libc"]
    ident = getattr(libc, get)(key, *((_ipc["ctypes"].c_size_t(0),) if kind == "shm" else ()), 0)
    if ident >= 0:
        getattr(libc, ctl)(ident, _ipc["IPC_RMID"], None)


@pytest.fixture
def ipc_key():
    """A fresh SysV IPC key; whatever holds it on the host afterwards is removed."""
    key = int.from_bytes(os.urandom(3), "little") | 0x51000000
    yield key
    for kind in ("shm", "msg"):
        _remove_sysv(kind, key)


def test_shared_memory_of_a_program_dies_with_its_sandbox(ipc_key):
    body = f"""
    made = [shm_create({ipc_key}, 4096, 0o666), shm_create(0, 8192, 0o600)]
    print(*("made" if shmid >= 0 else outcome(shmid) for shmid in made), sep=",")
    """
    # It may use SysV IPC inside.
    assert _raw_syscall_outcomes(body, SYSV_IPC) == ["made", "made"]
    leaked = [s for s in sysv_objects("shm") if s["key"] == ipc_key or s["cuid"] >= CFG.uid_base]
    for segment in leaked:  # clean up before failing
        _ipc["libc"].shmctl(segment["shmid"], _ipc["IPC_RMID"], None)
    assert leaked == []


def test_host_shared_memory_is_invisible(ipc_key):
    shmid = _ipc["shm_create"](ipc_key, 4096, 0o644)
    assert shmid >= 0
    address = _ipc["libc"].shmat(shmid, None, 0)
    _ipc["ctypes"].memmove(address, b"s3cret", 6)
    _ipc["libc"].shmdt(_ipc["ctypes"].c_void_p(address))
    body = f"""
    listed = open("/proc/sysvipc/shm").read().count("\\n") - 1
    print(shm_read({ipc_key}, 6), listed, sep=",")
    """
    assert _raw_syscall_outcomes(body, SYSV_IPC) == [os.strerror(errno.ENOENT), "0"]


def test_a_message_queue_does_not_carry_over_to_the_next_sandbox(ipc_key):
    assert _raw_syscall_outcomes(
        f"print(msg_send({ipc_key}, 'from the last sandbox'))", SYSV_IPC
    ) == ["done"]
    assert _raw_syscall_outcomes(f"print(msg_receive({ipc_key}))", SYSV_IPC) == [
        os.strerror(errno.ENOENT)
    ]


@pytest.fixture
def training_data_dir():
    """World-readable expected outputs where a trainer might keep them (a data or run dir
    outside anything the sandbox needs), as a path prefix; removed afterwards."""
    parent = next(d for d in ("/srv", "/var/lib", "/opt") if os.access(d, os.W_OK))
    path = tempfile.mkdtemp(prefix="prime-sandbox-data-", dir=parent)
    os.chmod(path, 0o755)
    with open(os.path.join(path, "train.jsonl"), "w") as f:
        f.write('{"outputs": ["3"]}\n')
    os.chmod(os.path.join(path, "train.jsonl"), 0o644)
    yield path
    shutil.rmtree(path)


# Walks "/" breadth first (sorted, at most LIMIT dirs; not into the kernel's /proc and /sys
# nor into the interpreter's own dirs) and prints every file it may open, as JSON.
WALK_THE_ROOT = """
import json, os, sys
skip = {"/proc", "/sys", "/usr", os.path.realpath(sys.base_prefix)}
found, queue, LIMIT = [], ["/"], 3000
while queue and LIMIT:
    directory, LIMIT = queue.pop(0), LIMIT - 1
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        continue
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.path not in skip:
                queue.append(entry.path)
        elif os.access(entry.path, os.R_OK):
            found.append(entry.path)
print(json.dumps(found))
"""


def test_host_files_outside_the_allow_list_are_not_there(training_data_dir):
    cfg = dataclasses.replace(CFG, test_timeout_s=20, cpu_time_s=10, max_output_kb=4096)
    report = run_program(DISABLE_AUDIT_HOOK + WALK_THE_ROOT, [""], None, cfg).reports[0]
    assert report.exit_code == 0, report.stderr_tail
    found = json.loads(report.output.splitlines()[-1])
    homes = ("/home/", "/root/", os.path.expanduser("~") + "/")
    data = [path for path in found if path.startswith(training_data_dir)]
    in_homes = [path for path in found if path.startswith(homes)]
    in_checkout = [path for path in found if path.startswith(os.getcwd() + "/")]
    assert (data, in_homes, in_checkout) == ([], [], [])


# Memory that no process's address space holds, so RLIMIT_AS never counts it: memfd pages
# (one memfd per chunk, each under RLIMIT_FSIZE) and SysV shared memory segments,
# attached, filled and detached. Prints the MiB held each way after each step (the kernel
# may kill it for going over a cgroup limit).
HOLD_UNMAPPED_MEMORY = """
import os
def hold_memfds(limit_mib, chunk=bytes(8 << 20)):
    held, fds = 0, []  # one memfd per chunk: RLIMIT_FSIZE bounds each
    try:
        while held < limit_mib:
            fds.append(os.memfd_create("hoard"))
            os.write(fds[-1], chunk)
            held += 8
            print("memfd", held, flush=True)
    except OSError as e:
        print("memfd", held, type(e).__name__, flush=True)
def hold_shm(limit_mib):
    held = 0
    while held < limit_mib:
        shmid = libc.shmget(0, ctypes.c_size_t(64 << 20), IPC_CREAT | 0o600)
        address = libc.shmat(shmid, None, 0) if shmid >= 0 else None
        if address in (None, 2**64 - 1):
            print("shm", held, outcome(-1), flush=True)
            return
        ctypes.memset(address, 1, 64 << 20)
        libc.shmdt(ctypes.c_void_p(address))
        held += 64
        print("shm", held, flush=True)
hold_memfds(384)
hold_shm(384)
"""


def test_memory_outside_the_address_space_is_bounded_too():
    cfg = dataclasses.replace(CFG, memory_mb=128, total_memory_mb=256, test_timeout_s=10)
    program = DISABLE_AUDIT_HOOK + SYSV_IPC + HOLD_UNMAPPED_MEMORY
    report = run_program(program, [""], None, cfg).reports[0]
    held = {}
    for line in report.output.splitlines()[1:]:
        kind, mib, *_ = line.split()
        held[kind] = int(mib)
    assert held and sum(held.values()) <= cfg.total_memory_mb, report.output


def test_the_probe_says_how_memory_is_bounded(caplog):
    probe._probe.cache_clear()
    with caplog.at_level(logging.INFO, logger=probe.__name__):
        probe.check_isolation(CFG)
    expected = "memory.max=" if cgroup.find_parent("") else "memfd_create is refused"
    assert expected in caplog.text


def test_a_sandbox_joins_its_own_cgroup_with_its_memory_limit(tmp_path, monkeypatch):
    # A stand-in for a delegated cgroup v2 dir: the plumbing, not the kernel's limit (the
    # memory test above covers that wherever the host delegates one).
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    removed = {}

    def remove(path: str) -> None:
        for name in os.listdir(path):
            with open(os.path.join(path, name)) as f:
                removed[name] = f.read()
        shutil.rmtree(path)

    monkeypatch.setattr(cgroup, "remove", remove)
    cfg = dataclasses.replace(CFG, cgroup_parent=str(tmp_path), total_memory_mb=300)
    program = "import os\nos.close(os.memfd_create('allowed'))\nprint('ok')"
    run = run_program(program, [""], None, cfg)
    assert (run.memory_limit, run.reports[0].output) == (cgroup.MEMORY_CGROUP, "ok\n")
    assert removed["memory.max"] == str(300 << 20)
    assert removed["cgroup.procs"].isdigit()  # the bootstrap moved itself in
    assert os.listdir(tmp_path) == ["cgroup.subtree_control"]


def test_a_cgroup_parent_that_cannot_serve_is_an_error(tmp_path):
    cfg = dataclasses.replace(CFG, cgroup_parent=str(tmp_path))
    with pytest.raises(ValueError, match="cgroup.subtree_control"):
        run_program("print(1)", [""], None, cfg)
