"""Held-out evaluation with the rollout engine and the verifiers: pass@1 and maj@k.

pass@1 is greedy by default (temperature 0); with ``samples > 1`` it is the mean accuracy
of the sampled answers, and maj@k scores the most frequent extracted answer of each prompt.
The 95% interval is the normal approximation over prompts (per-prompt accuracies are the
units, so the k samples of one prompt are not counted as independent).
"""

from __future__ import annotations

import math
from collections import Counter

from prime_megatron.rewards.extract import extract_answer
from prime_megatron.trainer.collect import PromptEncoder, score_on_rank0


def evaluate(
    engine, rows: list, encode: PromptEncoder, tokenizer, rewards, samples: int = 1, seed: int = 0
) -> dict[str, float]:
    """Collective. Accuracy of the engine's current weights on ``rows``."""
    pairs = [(r, encode(r.messages)) for r in rows]
    pairs = [(r, ids) for r, ids in pairs if ids is not None]
    rows, prompts = [r for r, _ in pairs], [ids for _, ids in pairs]
    temperature = 0.0 if samples == 1 else None
    out = engine.generate(prompts, samples, seed=seed, temperature=temperature)
    texts = tokenizer.batch_decode(out.response_ids, skip_special_tokens=True)
    scores, failures = score_on_rank0(rewards, texts, [rows[g] for g in out.group_index])
    n = len(rows)
    acc, ci95 = prompt_accuracy(scores, samples)
    result = {
        "pass@1": acc,
        "pass@1_ci95": ci95,
        "prompts": float(n),
        "response_len": sum(len(r) for r in out.response_ids) / max(len(out.response_ids), 1),
    }
    if samples > 1:
        result[f"maj@{samples}"] = _majority_accuracy(texts, scores, samples, n)
    result.update({f"fail_{k}": float(v) for k, v in failures.items() if v})
    return result


def prompt_accuracy(scores: list[float], samples: int) -> tuple[float, float]:
    """Mean accuracy of ``scores`` (``samples`` consecutive scores per prompt) and the
    half-width of its 95% interval, with each prompt's mean accuracy as one unit."""
    n = len(scores) // samples
    per_prompt = [sum(scores[p * samples : (p + 1) * samples]) / samples for p in range(n)]
    acc = sum(per_prompt) / max(n, 1)
    variance = sum((x - acc) ** 2 for x in per_prompt) / max(n, 1)
    return acc, 1.96 * math.sqrt(variance / max(n, 1))


def _majority_accuracy(texts: list[str], scores: list[float], k: int, n: int) -> float:
    """Score of the most common extracted answer per prompt (ties: first seen)."""
    correct = 0.0
    for p in range(n):
        answers = [extract_answer(t) for t in texts[p * k : (p + 1) * k]]
        votes = Counter(a for a in answers if a is not None)
        if votes:
            winner = votes.most_common(1)[0][0]
            correct += scores[p * k + answers.index(winner)]
    return correct / max(n, 1)
