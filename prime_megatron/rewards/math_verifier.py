"""Math outcome reward: extract the final answer, then equivalence with math-verify.

Deterministic: same response and ground truth, same verdict. math-verify's own
``signal.alarm`` timeouts are off (they turn a timeout into a silent "wrong"); the
deadline here turns it into a counted ``timeout`` instead, and the process pool kills a
worker that ignores it.
"""

import logging
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .extract import extract_answer
from .verdict import CRASH, NO_ANSWER, OK, TIMEOUT, Verdict

_INTEGER = re.compile(r"[+-]?\d+")


class SampleTimeout(Exception):
    """A sample took longer than its deadline."""


def answers_equivalent(predicted: str, gold: str) -> bool:
    """``predicted`` equals ``gold`` mathematically (math-verify; integers compared fast)."""
    predicted, gold = predicted.strip(), gold.strip()
    if _INTEGER.fullmatch(predicted) and _INTEGER.fullmatch(gold):
        return int(predicted) == int(gold)
    from math_verify import parse, verify  # heavy import (sympy): only where needed

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeouts disabled" notice
    gold_parsed = parse(_as_latex(gold), parsing_timeout=None)
    predicted_parsed = parse(_as_latex(predicted), parsing_timeout=None)
    return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=None))


def _as_latex(answer: str) -> str:
    return "$" + answer.strip("$ ") + "$"


def score_math(
    response: str, ground_truth: str, extractors: Sequence[str] = ("boxed", "hash")
) -> Verdict:
    """1.0 if the response's final answer is equivalent to ``ground_truth``, else 0.0."""
    answer = extract_answer(response, extractors)
    if answer is None:
        return Verdict(0.0, NO_ANSWER)
    correct = answers_equivalent(answer, str(ground_truth))
    return Verdict(1.0 if correct else 0.0, OK, answer)


def score_math_with_deadline(
    response: str, ground_truth: str, extractors: Sequence[str], timeout_s: float
) -> Verdict:
    """``score_math`` that reports ``timeout`` / ``crash`` instead of hanging or raising."""
    try:
        with deadline(timeout_s):
            return score_math(response, ground_truth, extractors)
    except SampleTimeout:
        return Verdict(0.0, TIMEOUT, f"over {timeout_s}s")
    except Exception as e:  # a verifier bug must cost this sample, not the batch
        return Verdict(0.0, CRASH, f"{type(e).__name__}: {e}")


def math_task(args: tuple) -> Verdict:
    """Picklable entry point for the process pool: ``(response, gold, extractors, timeout)``."""
    return score_math_with_deadline(*args)


# One of each answer kind whose first comparison in a process is slow (sympy imports
# and builds parts lazily): fractions, roots, intervals, sets, equations, percentages.
_WARM_UP_PAIRS = [
    ("\\frac{1}{2}", "0.5"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("(1, 2]", "(1,2]"),
    ("\\{1, 2\\}", "\\{2, 1\\}"),
    ("x=2", "2"),
    ("50\\%", "0.5"),
]


def warm_up() -> None:
    """Pool initializer: pay math-verify's import and first-call costs before any sample
    is on the clock."""
    for predicted, gold in _WARM_UP_PAIRS:
        answers_equivalent(predicted, gold)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise ``SampleTimeout`` after ``seconds`` of wall time (main thread only; elsewhere
    a no-op, and the caller must bound time itself)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise SampleTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
