"""Dumped training samples (``<run>/samples/step_XXXXXX.jsonl``, ``run.dump_samples_every``)
decoded to text, and the "right answer, wrong step" rate over training.

A dump row is ``{"step", "row_index", "prompt_ids", "response_ids", "outcome", "q"}``;
``prompt_ids`` carry the chat template (BOS, prompt characters, newline) and ``q`` is the
per-response-token log pi_prm - log pi_ref (null without a PRM).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prime_megatron.data import synthetic


@dataclass(frozen=True)
class DecodedSample:
    step: int
    prompt: str  # the task prompt, template stripped: "47+38-19"
    pieces: tuple[str, ...]  # text of each response token ("" for special tokens)
    outcome: float
    q: tuple[float, ...] | None  # per response token, aligned with ``pieces``

    @property
    def response(self) -> str:
        return "".join(self.pieces)


def piece_table(tokenizer) -> list[str]:
    """Token id -> its text, special tokens (BOS, EOS, pad) -> "". Decoded rather than the
    vocabulary's spelling, which may be byte-level (``Ċ`` for a newline)."""
    special = set(tokenizer.all_special_ids)
    return ["" if i in special else tokenizer.decode([i]) for i in range(len(tokenizer))]


def decode_sample(row: dict, table: Sequence[str]) -> DecodedSample:
    """One dump row -> text. Raises ValueError if ``q`` does not cover the response."""
    q = row.get("q")
    if q is not None and len(q) != len(row["response_ids"]):
        raise ValueError(f"q has {len(q)} values for {len(row['response_ids'])} tokens")
    return DecodedSample(
        step=int(row["step"]),
        prompt="".join(table[i] for i in row["prompt_ids"]).strip(),
        pieces=tuple(table[i] for i in row["response_ids"]),
        outcome=float(row["outcome"]),
        q=tuple(q) if q is not None else None,
    )


@dataclass
class RawsCount:
    """Samples, correct boxed answers, and correct answers reached through a wrong step."""

    samples: int = 0
    correct: int = 0
    raws: int = 0

    def add(self, other: RawsCount) -> RawsCount:
        return RawsCount(
            self.samples + other.samples, self.correct + other.correct, self.raws + other.raws
        )

    def rates(self) -> dict[str, float | None]:
        return {
            "samples": self.samples,
            "raws": self.raws,
            "raws_rate": self.raws / self.samples if self.samples else None,
            "raws_among_correct": self.raws / self.correct if self.correct else None,
        }


def raws_count(samples: Iterable[DecodedSample]) -> RawsCount:
    """Count over ``samples`` (correct = the boxed answer is right, as the outcome reward)."""
    total = RawsCount()
    for s in samples:
        correct = synthetic.boxed_answer_correct(s.prompt, s.response)
        raws = synthetic.right_answer_wrong_step(s.prompt, s.response)
        total = total.add(RawsCount(1, int(correct), int(raws)))
    return total


def raws_by_step(samples: Iterable[DecodedSample]) -> dict[int, RawsCount]:
    by_step: dict[int, list[DecodedSample]] = {}
    for s in samples:
        by_step.setdefault(s.step, []).append(s)
    return {step: raws_count(group) for step, group in sorted(by_step.items())}


def pool_counts(counts: Iterable[RawsCount]) -> RawsCount:
    total = RawsCount()
    for c in counts:
        total = total.add(c)
    return total
