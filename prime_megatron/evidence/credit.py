"""Step-level credit of the implicit PRM: do per-step rewards locate the first wrong step?

A step is one response line (``synthetic.step_char_spans``; its newline belongs to it). Its
reward is the sum of the per-token implicit reward q = log pi_prm - log pi_ref over the
step's tokens (beta only rescales, so it is left out). Tokens map to steps by their first
character; special tokens (EOS) have no text and belong to no step.

"Wrong" is the positive class and the score is ``-reward`` (a lower reward should mean a
wrong step), so AUROC 1 = every wrong step got less reward than every correct one, 0.5 =
no information. Two labelings:

* ``first_vs_preceding`` (the headline): in every response that has a first wrong step,
  that step (positive) against the correct steps before it (negatives). This asks whether
  the rewards find *where* the response went wrong, not merely whether it is wrong.
  Responses whose first wrong step is a missing line (they stop early) have no such step
  and are left out.
* ``all_steps``: every step of every response, wrong = at or after the first wrong step
  (the PRM800K labeling). Correct responses contribute only negatives, so this also
  rewards plain outcome discrimination.

``first_vs_preceding_carry`` is the headline restricted to carry steps (the planted error
kind: ``synthetic.carry_steps``): where a model that forgets carries is itself unsure,
only learned credit can rank a wrong carry below a right one.

``within_response`` pairs each first wrong step only with the correct steps of its own
response (between-response reward offsets cancel). Baselines: an untrained PRM gives q = 0
(all ties, AUROC 0.5); ``random_direction`` flips the sign of every token's q at random
(same per-token magnitudes, no direction); ``position`` scores a step by its index (later =
more suspect), the AUROC a pure position prior would get.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from prime_megatron.data import synthetic
from prime_megatron.evidence.samples import DecodedSample
from prime_megatron.evidence.stats import auroc, even_chunks, percentile

Labeled = tuple[list[float], list[int]]  # (scores, labels) for AUROC


@dataclass(frozen=True)
class StepCredit:
    """One response's steps with their rewards and ground truth."""

    step: int  # training step of the dump
    first_wrong: int | None  # synthetic.first_wrong_step (== len(rewards): a missing step)
    raws: bool  # right answer, wrong step
    token_q: tuple[float, ...]
    token_spans: tuple[tuple[int, int], ...]  # [first, last) token index of each step
    rewards: tuple[float, ...]  # per step: sum of token_q over its span
    carry: tuple[bool, ...] = ()  # per step: a carry step (synthetic.carry_steps)


def token_offsets(pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Char ``[start, end)`` of each token in the concatenated text."""
    offsets, start = [], 0
    for piece in pieces:
        offsets.append((start, start + len(piece)))
        start += len(piece)
    return offsets


def step_rewards(token_q: Sequence[float], spans: Sequence[tuple[int, int]]) -> tuple[float, ...]:
    return tuple(float(sum(token_q[a:b])) for a, b in spans)


def step_credit(sample: DecodedSample) -> StepCredit | None:
    """None for a sample without token rewards (a run without PRM)."""
    if sample.q is None:
        return None
    response = sample.response
    char_spans = synthetic.step_char_spans(response)
    spans = synthetic.char_spans_to_token_spans(char_spans, token_offsets(sample.pieces))
    return StepCredit(
        step=sample.step,
        first_wrong=synthetic.first_wrong_step(sample.prompt, response),
        raws=synthetic.right_answer_wrong_step(sample.prompt, response),
        token_q=sample.q,
        token_spans=tuple(spans),
        rewards=step_rewards(sample.q, spans),
        carry=tuple(synthetic.carry_steps(response)),
    )


def first_wrong_token(sample: DecodedSample) -> int | None:
    """Index of the response token holding ``synthetic.first_wrong_char`` (None: the
    response is the reference). Past the text (the response stopped early): its last token."""
    char = synthetic.first_wrong_char(sample.prompt, sample.response)
    if char is None:
        return None
    for index, (start, end) in enumerate(token_offsets(sample.pieces)):
        if start <= char < end:
            return index
    return len(sample.pieces) - 1


def with_token_q(credit: StepCredit, token_q: Sequence[float]) -> StepCredit:
    """The same response scored by other token rewards."""
    q = tuple(token_q)
    return replace(credit, token_q=q, rewards=step_rewards(q, credit.token_spans))


def locatable(credit: StepCredit) -> bool:
    """Has a first wrong step that is an actual line of the response."""
    return credit.first_wrong is not None and credit.first_wrong < len(credit.rewards)


def first_vs_preceding(credits: Sequence[StepCredit]) -> Labeled:
    scores, labels = [], []
    for c in filter(locatable, credits):
        scores += [-r for r in c.rewards[: c.first_wrong + 1]]
        labels += [0] * c.first_wrong + [1]
    return scores, labels


def first_vs_preceding_carry(credits: Sequence[StepCredit]) -> Labeled:
    """``first_vs_preceding`` over carry steps only."""
    scores, labels = [], []
    for c in filter(locatable, credits):
        for i in range(c.first_wrong + 1):
            if c.carry[i]:
                scores.append(-c.rewards[i])
                labels.append(int(i == c.first_wrong))
    return scores, labels


def all_steps(credits: Sequence[StepCredit]) -> Labeled:
    scores, labels = [], []
    for c in credits:
        wrong_from = len(c.rewards) if c.first_wrong is None else c.first_wrong
        scores += [-r for r in c.rewards]
        labels += [int(i >= wrong_from) for i in range(len(c.rewards))]
    return scores, labels


def by_index(credit: StepCredit) -> StepCredit:
    """The response with each step's reward replaced by minus its index (later = worse)."""
    return replace(credit, rewards=tuple(-float(i) for i in range(len(credit.rewards))))


def by_position(labeled: Callable[[Sequence[StepCredit]], Labeled]):
    """The same labeling with each step scored by its index instead of its reward."""

    def labeled_by_index(credits: Sequence[StepCredit]) -> Labeled:
        return labeled([by_index(c) for c in credits])

    return labeled_by_index


def within_response(credits: Sequence[StepCredit]) -> float | None:
    """P(first wrong step's reward < a preceding correct step's reward of the same
    response), ties 1/2, pooled over all such pairs; None without pairs."""
    wins, pairs = 0.0, 0
    for c in filter(locatable, credits):
        wrong = c.rewards[c.first_wrong]
        for right in c.rewards[: c.first_wrong]:
            wins += 1.0 if wrong < right else 0.5 if wrong == right else 0.0
            pairs += 1
    return wins / pairs if pairs else None


def measure(credits: Sequence[StepCredit], labeled: Callable = first_vs_preceding) -> float | None:
    return auroc(*labeled(credits))


def sign_flipped(token_q: Sequence[float], rng: random.Random) -> list[float]:
    return [q if rng.random() < 0.5 else -q for q in token_q]


def random_direction(
    credits: Sequence[StepCredit], repeats: int, seed: int, labeled: Callable = first_vs_preceding
) -> list[float]:
    """AUROCs of ``repeats`` random sign flips of every token's q (seeded)."""
    rng = random.Random(seed)
    out = []
    for _ in range(repeats):
        flipped = [with_token_q(c, sign_flipped(c.token_q, rng)) for c in credits]
        value = measure(flipped, labeled)
        if value is not None:
            out.append(value)
    return out


def summary(credits: Sequence[StepCredit], repeats: int, seed: int) -> dict:
    """All measures for one set of responses (one stretch of training)."""
    scores, labels = first_vs_preceding(credits)
    rand = sorted(random_direction(credits, repeats, seed))
    return {
        "steps": [min(c.step for c in credits), max(c.step for c in credits)],
        "responses": len(credits),
        "wrong_steps": sum(labels),
        "preceding_correct_steps": len(labels) - sum(labels),
        "auroc": auroc(scores, labels),
        "auroc_all_steps": measure(credits, all_steps),
        "auroc_carry_steps": measure(credits, first_vs_preceding_carry),
        "auroc_within_response": within_response(credits),
        "random_direction": {
            "mean": sum(rand) / len(rand) if rand else None,
            "p2.5": percentile(rand, 0.025),
            "p97.5": percentile(rand, 0.975),
        },
        "position_baseline": measure(credits, by_position(first_vs_preceding)),
        "position_baseline_all_steps": measure(credits, by_position(all_steps)),
        "max_abs_q": max((abs(q) for c in credits for q in c.token_q), default=0.0),
    }


def credit_report(samples: Sequence[DecodedSample], bins: int, repeats: int, seed: int) -> dict:
    """Step credit over training: the untrained PRM (the step-1 dump: with ``prm_update=after``
    its q come from the PRM before any update), ``bins`` contiguous stretches of the later
    dumps, all later dumps pooled, and the right-answer-wrong-step responses alone."""
    credits = [c for c in map(step_credit, samples) if c is not None]
    untrained = [c for c in credits if c.step == 1]
    trained = [c for c in credits if c.step > 1]
    stretches = even_chunks(sorted({c.step for c in trained}), bins)
    over_training = [
        summary([c for c in trained if c.step in steps], repeats, seed)
        for steps in map(set, stretches)
    ]
    raws = [c for c in trained if c.raws]
    return {
        "dumps": len({c.step for c in credits}),
        "responses": len(credits),
        "untrained": summary(untrained, repeats, seed) if untrained else None,
        "by_dump": by_dump(credits),
        "over_training": over_training,
        "trained_pooled": summary(trained, repeats, seed) if trained else None,
        "raws_responses": {
            "responses": len(raws),
            "auroc": measure(raws),
            "auroc_within_response": within_response(raws),
        },
    }


def by_dump(credits: Sequence[StepCredit]) -> list[list]:
    """[step, first-wrong-vs-preceding AUROC, wrong steps] for every dump."""
    rows = []
    for step in sorted({c.step for c in credits}):
        scores, labels = first_vs_preceding([c for c in credits if c.step == step])
        rows.append([step, auroc(scores, labels), sum(labels)])
    return rows


def online_credit(
    credits: Sequence[StepCredit],
    confidences: dict[str, Sequence[Sequence[float]]],
    repeats: int,
    seed: int,
) -> dict[str, float]:
    """The ``credit/*`` metrics of one training batch: first-wrong-step AUROC of the PRM's
    rewards (all steps and carry steps only) against its baselines on the same steps:
    each model in ``confidences`` scoring a step by its own log-prob of the step's tokens
    (``{"policy": per-response token log-probs, ...}``), the position prior, and random
    directions (mean over ``repeats`` sign flips). Undefined AUROCs are left out."""
    labelings = {"": first_vs_preceding, "_carry": first_vs_preceding_carry}
    scored = {"prm": credits, "position": [by_index(c) for c in credits]}
    for name, token_logps in confidences.items():
        scored[f"confidence_{name}"] = [
            with_token_q(c, lp) for c, lp in zip(credits, token_logps, strict=True)
        ]
    out: dict[str, float] = {"credit/wrong_steps": float(sum(first_vs_preceding(credits)[1]))}
    for suffix, labeled in labelings.items():
        for name, variant in scored.items():
            value = measure(variant, labeled)
            if value is not None:
                out[f"credit/{name}_auroc{suffix}"] = value
        rand = random_direction(credits, repeats, seed, labeled)
        if rand:
            out[f"credit/random_auroc{suffix}"] = sum(rand) / len(rand)
    return out
