"""Code outcome reward: run the response's last Python block against the tests in the
sandbox; score = fraction of tests passed. Any sandbox violation zeroes the sample."""

import re
import signal
from typing import Any

from .sandbox.config import SandboxConfig
from .sandbox.probe import check_isolation
from .sandbox.runner import SandboxRun, TestReport, run_program
from .testcases import TestSuite, parse_test_suite, return_matches, stdout_matches
from .verdict import CRASH, NO_ANSWER, OK, SANDBOX_VIOLATION, TIMEOUT, Verdict

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON = {"python", "python3", "py"}

PASSED, WRONG = "passed", "wrong"
# A sample's status is its worst test outcome (a violation is handled before).
_SEVERITY = (TIMEOUT, CRASH)


def extract_code(response: str) -> str | None:
    """The last ```python (or ```py / ```python3) block; else the last unlabelled block."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(response)]
    for wanted in (_PYTHON, {""}):
        bodies = [body for lang, body in blocks if lang in wanted]
        if bodies and bodies[-1].strip():
            return bodies[-1]
    return None


def score_code(response: str, ground_truth: Any, cfg: SandboxConfig) -> Verdict:
    """Run the extracted program on every test; ``ValueError`` for a bad ground truth."""
    suite = parse_test_suite(ground_truth)
    code = extract_code(response)
    if code is None:
        return Verdict(0.0, NO_ANSWER)
    check_isolation(cfg)
    run = run_program(code, list(suite.inputs), suite.fn_name, cfg)
    outcomes = judge_run(run, suite, cfg.max_output_kb << 10)
    detail = ",".join(outcomes)
    if SANDBOX_VIOLATION in outcomes:
        return Verdict(0.0, SANDBOX_VIOLATION, detail)
    score = outcomes.count(PASSED) / len(outcomes)
    status = next((s for s in _SEVERITY if s in outcomes), OK)
    return Verdict(score, status, detail)


def judge_run(run: SandboxRun, suite: TestSuite, max_output_bytes: int) -> list[str]:
    """One outcome per test: passed, wrong, crash, timeout or sandbox_violation."""
    by_index = {report.index: report for report in run.reports}
    missing = TIMEOUT if run.timed_out else CRASH  # tests the run never got to
    return [
        judge_test(by_index[i], suite, max_output_bytes) if i in by_index else missing
        for i in range(len(suite))
    ]


def judge_test(report: TestReport, suite: TestSuite, max_output_bytes: int) -> str:
    if report.flags or report.signal == signal.SIGXFSZ or report.output_bytes > max_output_bytes:
        return SANDBOX_VIOLATION
    if report.timed_out or report.signal == signal.SIGXCPU:
        return TIMEOUT
    if report.signal is not None or report.exit_code != 0:
        return CRASH
    expected = suite.outputs[report.index]
    if suite.fn_name is None:
        return PASSED if stdout_matches(report.output, expected) else WRONG
    return PASSED if return_matches(report.output, expected) else WRONG
