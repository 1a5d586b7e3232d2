"""Check 1: every checked row's prompt, rendered in the configured format (the chat
template or ``data.plain_template``), encodes and decodes back to the very same text.

A prompt that does not round-trip is not what the policy is shown: a character outside the
vocabulary becomes an unknown token, a template's special-token text is split into ordinary
pieces, spaces are cleaned up. A FAIL, except when the decoded text is the rendered one in
a Unicode normal form (a normalising tokenizer such as Qwen2's, NFC): the model reads the
same text spelled canonically, a WARN.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from prime_megatron.data.rows import PromptRow
from prime_megatron.preflight.report import FAIL, PASS, WARN, Check, listed
from prime_megatron.trainer.collect import PromptEncoder

TITLE = "tokenizer and chat template"
_BEFORE, _AFTER = 12, 28  # characters of context shown around the first difference
_NORMAL_FORMS = ("NFC", "NFKC")


@dataclass(frozen=True)
class Mismatch:
    row: int  # 1-based position among the training rows
    offset: int  # first character where the decoded text differs
    rendered: str  # the rendered text around ``offset``
    decoded: str  # the decoded text around ``offset``
    # The decoded text is the rendered one in a Unicode normal form: the tokenizer
    # normalises (as Qwen2's does, NFC), the model reads the same text spelled canonically.
    normalised: bool = False

    def describe(self) -> str:
        # ascii(): a composed and a decomposed accent print alike, their escapes do not.
        kind = " (Unicode normalisation only)" if self.normalised else ""
        return (
            f"row {self.row}, character {self.offset}{kind}: rendered {ascii(self.rendered)}, "
            f"decoded {ascii(self.decoded)}"
        )


@dataclass(frozen=True)
class RoundTrip:
    checked: int
    mismatches: tuple[Mismatch, ...]

    def check(self) -> Check:
        """FAIL if a prompt comes back changed, WARN if only in its Unicode normal form."""
        if not self.mismatches:
            return Check(TITLE, PASS, f"all {self.checked} rows round-trip "
                                      "(render -> encode -> decode)")  # fmt: skip
        status = WARN if all(m.normalised for m in self.mismatches) else FAIL
        return Check(
            TITLE, status, f"{len(self.mismatches)} of {self.checked} rows do not round-trip",
            listed([m.describe() for m in self.mismatches]),
        )  # fmt: skip


def round_trip(rows: Sequence[PromptRow], encode: PromptEncoder) -> RoundTrip:
    """Render each row as the collector does, tokenize it, decode it (special tokens kept)
    and compare with the rendered text."""
    mismatches = []
    for number, row in enumerate(rows, start=1):
        text = encode.renderer(row.messages)
        back = encode.tokenizer.decode(encode.token_ids(row.messages))
        if back != text:
            mismatches.append(_first_difference(number, text, back))
    return RoundTrip(len(rows), tuple(mismatches))


def _first_difference(row: int, text: str, back: str) -> Mismatch:
    pairs = zip(text, back, strict=False)
    offset = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(text), len(back)))
    window = slice(max(0, offset - _BEFORE), offset + _AFTER)
    normalised = any(unicodedata.normalize(form, text) == back for form in _NORMAL_FORMS)
    return Mismatch(row, offset, text[window], back[window], normalised)
