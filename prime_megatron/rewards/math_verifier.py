"""Math outcome reward: extract the final answer, then equivalence with math-verify.

Deterministic: same response and ground truth, same verdict. math-verify's own
``signal.alarm`` timeouts are off (they turn a timeout into a silent "wrong"); the
deadline here turns it into a counted ``timeout`` instead, and the process pool kills a
worker that ignores it. A ground truth that is not a math answer is a counted ``bad_gold``.
"""

import functools
import logging
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal

from .extract import extract_answer
from .verdict import BAD_GOLD, CRASH, NO_ANSWER, OK, TIMEOUT, Verdict

_INTEGER = re.compile(r"[+-]?\d+")
# A number in scientific notation, "1.5e3": math-verify reads its "e" as Euler's number.
_SCIENTIFIC = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d{1,3}")
_TRAILING_PERCENT = re.compile(r"\s*\\?%$")
# Text the dataset marked as text (units, names, "(A)"): compared as text, never prose.
_TEXT_GROUP = re.compile(r"\\(?:text\w*|mathrm|mbox|operatorname)\s*\{[^{}]*\}")
_WORD = re.compile(r"[A-Za-z]{3,}")
# Words a math answer may contain without being prose (function names written without "\").
_MATH_WORDS = frozenset({"and", "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp",
                         "max", "min", "gcd", "lcm", "mod", "det"})  # fmt: skip
_PROSE_MIN_WORDS = 2


class SampleTimeout(Exception):
    """A sample took longer than its deadline."""


class UnusableGold(ValueError):
    """The ground truth is not a math answer, so no response can be judged against it."""


def answers_equivalent(predicted: str, gold: str) -> bool:
    """``predicted`` equals ``gold`` mathematically (math-verify; integers compared fast).

    Both sides are normalised first: ``\\varnothing`` is ``\\emptyset``, and a trailing
    ``\\%`` / ``%`` may be dropped (either side). Raises ``UnusableGold`` for a gold answer
    that ``check_gold`` refuses.
    """
    predicted, gold = _normalise(predicted), _normalise(gold)
    if _equal(predicted, gold):
        return True
    # math-verify reads "12.5\%" as 0.125 and forgives the sign for some numbers only
    # ("25\%" == "25" but "12.5\%" != "12.5"): compare the bare numbers as well.
    bare = _TRAILING_PERCENT.sub("", predicted), _TRAILING_PERCENT.sub("", gold)
    return bare != (predicted, gold) and _equal(*bare)


def check_gold(gold: str) -> None:
    """Raise ``UnusableGold`` unless ``gold`` can be compared against.

    A gold answer is unusable if it is prose or if math-verify cannot parse it:

    * prose: at least two words of three or more letters, counted over whitespace-separated
      tokens that are letters only (after trimming punctuation), outside ``\\text{...}``-like
      groups, ignoring "and" and function names (sin, log, max, ...). "3 is the only possible
      value" and "There is exactly 1 such triangle" are prose; "x^2 + 2x", "ab + cd",
      "\\text{Devon and Sam}", "5 cm" and "no solution" are not. Prose must be refused
      before parsing: math-verify reads it as a product of one-letter symbols, or picks a
      number out of it ("There is exactly 1 such triangle" parses as 1), so any response
      boxing that number would be paid.
    * unparseable: math-verify's parse finds no answer at all (e.g. an empty gold).
    """
    gold = _normalise(gold)
    if not _INTEGER.fullmatch(gold):
        _parsed_gold(gold)


def _normalise(answer: str) -> str:
    # math-verify reads \varnothing as a symbol named "varnothing", not the empty set.
    answer = answer.strip().replace("\\varnothing", "\\emptyset")
    if _SCIENTIFIC.fullmatch(answer):  # exact decimal: "1.5e3" -> "1500", "2e-3" -> "0.002"
        answer = format(Decimal(answer), "f")
    return answer


def _equal(predicted: str, gold: str) -> bool:
    if _INTEGER.fullmatch(predicted) and _INTEGER.fullmatch(gold):
        return int(predicted) == int(gold)
    from math_verify import verify  # heavy import (sympy): only where needed

    gold_parsed = list(_parsed_gold(gold))
    return bool(verify(gold_parsed, _parse(predicted), timeout_seconds=None))


@functools.lru_cache(maxsize=1024)
def _parsed_gold(gold: str) -> tuple:
    """math-verify's parse of a normalised gold answer; cached because every one of a
    prompt's K samples (and ``check_gold`` before them) needs the same parse."""
    prose = _prose_words(gold)
    if len(prose) >= _PROSE_MIN_WORDS:
        raise UnusableGold(f"gold answer {gold!r} is prose, not a math answer")
    parsed = _parse(gold)
    if not parsed:
        raise UnusableGold(f"gold answer {gold!r} does not parse as math")
    return tuple(parsed)


def _prose_words(answer: str) -> list[str]:
    tokens = (t.strip(".,;:!?()'\"$") for t in _TEXT_GROUP.sub(" ", answer).split())
    return [t for t in tokens if _WORD.fullmatch(t) and t.lower() not in _MATH_WORDS]


def _parse(answer: str) -> list:
    from math_verify import parse  # heavy import (sympy): only where needed

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeouts disabled" notice
    return parse(_as_latex(answer), parsing_timeout=None)


def _as_latex(answer: str) -> str:
    return "$" + answer.strip("$ ") + "$"


def score_math(
    response: str, ground_truth: str, extractors: Sequence[str] = ("boxed", "hash")
) -> Verdict:
    """1.0 if the response's final answer is equivalent to ``ground_truth``, else 0.0.

    A ground truth that ``check_gold`` refuses scores 0.0 with status ``bad_gold`` whatever
    the response, so a data error is counted instead of passing as a wrong (or right) answer.
    """
    try:
        check_gold(str(ground_truth))
    except UnusableGold as e:
        return Verdict(0.0, BAD_GOLD, str(e))
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
