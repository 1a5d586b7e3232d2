"""Check 2: prompt lengths against ``rollout.max_prompt_len`` (measured by
``data/prompt_lengths.py``, the same measurement ``prepare_inputs`` refuses a job on)."""

from __future__ import annotations

from prime_megatron.data.prompt_lengths import PromptLengths
from prime_megatron.preflight.report import FAIL, PASS, WARN, Check, listed
from prime_megatron.trainer.inputs import PROMPT_LENGTH_SAMPLE

TITLE = "prompt lengths"


def lengths_check(lengths: PromptLengths) -> Check:
    """FAIL when no checked prompt fits (the trainer would never get one), WARN when some
    do not (the collector skips them)."""
    summary = lengths.summary()
    if lengths.none_fit:
        return Check(TITLE, FAIL, summary, (
            f"no checked prompt fits (prime-train refuses to start when none of the first "
            f"{PROMPT_LENGTH_SAMPLE} does); raise rollout.max_prompt_len or shorten the "
            "prompts (a chat template's system prompt counts)",
        ))  # fmt: skip
    if lengths.too_long:
        over = [f"row {r}: {lengths.lengths[r - 1]} tokens" for r in lengths.too_long_rows]
        return Check(TITLE, WARN, summary, ("skipped by the collector:", *listed(over)))
    return Check(TITLE, PASS, summary)
