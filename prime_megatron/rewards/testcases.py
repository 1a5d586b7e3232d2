"""Code test cases as APPS/TACO/PRIME store them, and how outputs are judged against them.

``reward_model.ground_truth`` of a code row is a JSON object (or its string):
``{"inputs": [...], "outputs": [...]}`` for stdin/stdout tests (each input is the stdin
text, each output the expected stdout) or, with ``"fn_name"``, call-based tests (each
input is the list of positional arguments, each output the return value, which APPS
often wraps in a one-element list).
"""

import json
import math
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TestSuite:
    inputs: tuple  # stdin strings, or argument lists when fn_name is set
    outputs: tuple  # expected stdout strings, or expected return values
    fn_name: str | None = None

    def __len__(self) -> int:
        return len(self.inputs)


def parse_test_suite(ground_truth: Any) -> TestSuite:
    """Parse and check a code ground truth; ``ValueError`` says what is wrong."""
    if isinstance(ground_truth, str):
        try:
            ground_truth = json.loads(ground_truth)
        except json.JSONDecodeError as e:
            raise ValueError(f"code ground_truth is not JSON: {e}") from None
    if not isinstance(ground_truth, dict):
        raise ValueError("code ground_truth must be an object with inputs and outputs")
    inputs, outputs = ground_truth.get("inputs"), ground_truth.get("outputs")
    fn_name = ground_truth.get("fn_name") or None
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise ValueError("code ground_truth needs list fields 'inputs' and 'outputs'")
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError(f"code ground_truth has {len(inputs)} inputs, {len(outputs)} outputs")
    if fn_name is not None and not isinstance(fn_name, str):
        raise ValueError(f"code ground_truth fn_name must be a string, got {fn_name!r}")
    if fn_name is None and not all(isinstance(x, str) for x in inputs + outputs):
        raise ValueError("stdin/stdout tests need string inputs and outputs")
    if fn_name is not None:
        inputs = [args if isinstance(args, list) else [args] for args in inputs]
    return TestSuite(tuple(inputs), tuple(outputs), fn_name)


def stdout_matches(actual: str, expected: str, tolerance: float = 1e-6) -> bool:
    """Line/whitespace-insensitive match, then token-wise: integers exactly, and a float
    tolerance only where the expected token is written as a float."""
    if _lines(actual) == _lines(expected):
        return True
    got, want = actual.split(), expected.split()
    return len(got) == len(want) and all(
        _token_eq(g, w, tolerance) for g, w in zip(got, want, strict=True)
    )


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return [line for line in lines if line]


_INTEGER = re.compile(r"[+-]?\d+")
# A decimal point or an exponent; not "inf"/"nan", which only match themselves.
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+(?=[eE]))([eE][+-]?\d+)?")


def _token_eq(got: str, want: str, tolerance: float) -> bool:
    if got == want:
        return True
    if _INTEGER.fullmatch(want):
        # A tolerance here would pay near misses: 999999000 is within 1e-6 of 999999937.
        return _INTEGER.fullmatch(got) is not None and int(got) == int(want)
    if not _FLOAT.fullmatch(want) or not (_FLOAT.fullmatch(got) or _INTEGER.fullmatch(got)):
        return False
    return math.isclose(float(got), float(want), rel_tol=tolerance, abs_tol=tolerance)


def return_matches(actual_json: str, expected: Any) -> bool:
    """A call's JSON-encoded return value equals ``expected`` (or APPS's ``[expected]``)."""
    try:
        actual = json.loads(actual_json)
    except json.JSONDecodeError:
        return False
    expected = json.loads(json.dumps(expected))  # tuples -> lists, like the actual side
    return actual == expected or [actual] == expected
