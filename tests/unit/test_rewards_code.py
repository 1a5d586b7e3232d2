"""Code reward pieces that need no sandbox: code extraction, test specs, judging."""

import json
import signal

import pytest

from prime_megatron.rewards.code_verifier import extract_code, judge_run
from prime_megatron.rewards.sandbox import runner
from prime_megatron.rewards.testcases import (
    parse_test_suite,
    return_matches,
    stdout_matches,
)

# (response, expected code)
CODE_BLOCKS = [
    ("```python\nprint(1)\n```", "print(1)\n"),
    ("```python\nprint(1)\n```\ntext\n```python\nprint(2)\n```", "print(2)\n"),  # last one
    ("```py\nx=1\n```", "x=1\n"),
    ("```Python3\nx=1\n```", "x=1\n"),
    ("```python\nprint(1)\n```\n```bash\nls\n```", "print(1)\n"),  # not the bash one
    ("```\nprint(3)\n```", "print(3)\n"),  # unlabelled block as a fallback
    ("```python\nprint(4)\n```\n```\nprint(3)\n```", "print(4)\n"),  # labelled wins
    ("no code at all", None),
    ("```python\n\n```", None),
    ("```python\nprint(1)", None),  # never closed
]


@pytest.mark.parametrize("response,expected", CODE_BLOCKS)
def test_extract_code(response, expected):
    assert extract_code(response) == expected


def test_parse_stdin_stdout_suite():
    suite = parse_test_suite(json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3", "7"]}))
    assert suite.fn_name is None and len(suite) == 2 and suite.inputs[1] == "3 4\n"


def test_parse_call_suite_wraps_single_arguments():
    suite = parse_test_suite({"fn_name": "f", "inputs": [[1, 2], 5], "outputs": [3, [5]]})
    assert suite.fn_name == "f" and suite.inputs == ([1, 2], [5])


@pytest.mark.parametrize(
    "ground_truth,words",
    [
        ("{", "not JSON"),
        ("[1]", "must be an object"),
        ({"inputs": "1", "outputs": ["1"]}, "list fields"),
        ({"inputs": [], "outputs": []}, "0 inputs"),
        ({"inputs": ["1"], "outputs": ["1", "2"]}, "1 inputs, 2 outputs"),
        ({"inputs": [1], "outputs": ["1"]}, "string inputs"),
        ({"fn_name": 3, "inputs": [[1]], "outputs": [1]}, "fn_name must be a string"),
    ],
)
def test_bad_suites_are_rejected(ground_truth, words):
    with pytest.raises(ValueError, match=words):
        parse_test_suite(ground_truth)


@pytest.mark.parametrize(
    "actual,expected,match",
    [
        ("3\n", "3", True),
        ("3  \n\n", "3\n", True),  # trailing spaces and blank lines
        ("1 2\n3 4\n", "1 2\n3 4", True),
        ("1  2\n", "1 2", True),  # token-wise
        ("0.3333333\n", "0.33333333", True),  # float tolerance
        ("0.33\n", "0.3333333", False),
        ("3\n", "4\n", False),
        ("1 2\n", "1 2 3", False),
        ("", "3", False),
        ("YES\n", "yes", False),
        # Integers compare exactly: a relative tolerance would pay near misses.
        ("999999000\n", "999999937", False),
        ("1000000000000000001\n", "1000000000000000000", False),
        ("3.0\n", "3", False),
        ("1e9\n", "1000000000", False),
        ("+7 -0\n", "7 0", True),
        # Floats get the tolerance only where the expected token is a float.
        ("3\n", "3.0", True),
        ("1.0000001e9\n", "1e9", True),
        ("1.001\n", "1.0", False),
        ("nan\n", "0.5", False),
        ("inf\n", "1e309", False),
    ],
)
def test_stdout_matching(actual, expected, match):
    assert stdout_matches(actual, expected) is match


@pytest.mark.parametrize(
    "actual_json,expected,match",
    [
        ("[1, 2]", [1, 2], True),
        ("3", [3], True),  # APPS wraps return values in a list
        ("[1, 2]", [[1, 2]], True),
        ("[1, 2]", (1, 2), True),  # tuples compare as lists
        ("3", 4, False),
        ("not json", 3, False),
        ('"a"', "a", True),
    ],
)
def test_return_matching(actual_json, expected, match):
    assert return_matches(actual_json, expected) is match


SUITE = parse_test_suite({"inputs": ["1\n", "2\n", "3\n", "4\n"], "outputs": ["1", "4", "9", "16"]})


def report(index, output="", **kw):
    return runner.TestReport(index=index, timed_out=kw.pop("timed_out", False), output=output, **kw)


def test_judging_each_way_a_test_can_end():
    run = runner.SandboxRun(
        "privileged",
        [
            report(0, "1\n", exit_code=0),
            report(1, "5\n", exit_code=0),
            report(2, "9\n", exit_code=1),  # right output, but it crashed
            report(3, timed_out=True, signal=signal.SIGKILL),
        ],
        timed_out=False,
    )
    assert judge_run(run, SUITE, 1024) == ["passed", "wrong", "crash", "timeout"]


def test_violations_trump_everything():
    run = runner.SandboxRun(
        "privileged",
        [
            report(0, "1\n", exit_code=0, flags=("socket.connect",)),
            report(1, "4\n", exit_code=0, output_bytes=2000),  # over the output cap
            report(2, signal=signal.SIGXFSZ),
            report(3, signal=signal.SIGXCPU),
        ],
        timed_out=False,
    )
    assert judge_run(run, SUITE, 1024) == ["sandbox_violation"] * 3 + ["timeout"]


def test_tests_the_run_never_reached():
    partial = [report(0, "1\n", exit_code=0)]
    cut = runner.SandboxRun("privileged", partial, timed_out=True)
    assert judge_run(cut, SUITE, 1024) == ["passed", "timeout", "timeout", "timeout"]
    died = runner.SandboxRun("privileged", partial, timed_out=False, error="harness died")
    assert judge_run(died, SUITE, 1024) == ["passed", "crash", "crash", "crash"]
