"""Final-answer extraction from a response: ``\\boxed{}``, ``####``, configurable fallbacks."""

import re
from collections.abc import Callable, Sequence

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_HASH = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(
    r"(?:final answer|answer)\s*(?:is|:)\s*:?\s*\$*([^\n$]+?)\$*\s*\.?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces kept), or of a
    braceless ``\\boxed 5``."""
    for match in reversed(list(_BOXED.finditer(text))):
        rest = text[match.end() :]
        if rest.startswith("{"):
            content = _balanced(rest)
            if content is not None:
                return content.strip()
        elif rest[:1] and not rest[0].isspace():
            return re.split(r"[\s$]", rest, maxsplit=1)[0]
    return None


def _balanced(text: str) -> str | None:
    """The content of the brace group ``text`` starts with, or None if it never closes."""
    depth = 0
    for i, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[1:i]
    return None


def hash_mark(text: str) -> str | None:
    """GSM8K style: what follows the last ``####``."""
    matches = _HASH.findall(text)
    return matches[-1].strip() if matches else None


def answer_is(text: str) -> str | None:
    """ "The answer is X" / "Answer: X" (last occurrence)."""
    matches = _ANSWER_IS.findall(text)
    return matches[-1].strip() if matches else None


def last_number(text: str) -> str | None:
    matches = _NUMBER.findall(text)
    return matches[-1].rstrip(",") if matches else None


EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "boxed": boxed,
    "hash": hash_mark,
    "answer_is": answer_is,
    "last_number": last_number,
}


def extract_answer(text: str, methods: Sequence[str] = ("boxed", "hash")) -> str | None:
    """The first non-empty answer found by ``methods``, tried in order."""
    for method in methods:
        answer = EXTRACTORS[method](text)
        if answer:
            return answer
    return None
