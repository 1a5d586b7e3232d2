"""The result of scoring one sample: a score in [0, 1] and what, if anything, went wrong."""

from dataclasses import dataclass

OK = "ok"
NO_ANSWER = "no_answer"  # no final answer / no code block found in the response
TIMEOUT = "timeout"  # the verifier (math) or a test run (code) ran out of time
CRASH = "crash"  # the verifier raised, or the program crashed on a test
SANDBOX_VIOLATION = "sandbox_violation"  # the program tried something the sandbox forbids
BAD_GOLD = "bad_gold"  # the ground truth is not a usable answer: a data error, not the model's

FAILURE_KINDS = (TIMEOUT, CRASH, NO_ANSWER, SANDBOX_VIOLATION, BAD_GOLD)


@dataclass(frozen=True)
class Verdict:
    """``score`` is 0 whenever ``status`` is a failure, except code, where a timed-out or
    crashed test only fails that test (score = fraction of tests passed). There is no
    neutral score: nothing that fails is paid 0.5.
    """

    score: float
    status: str = OK
    detail: str = ""
