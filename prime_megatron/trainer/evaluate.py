"""Held-out evaluation with the rollout engine and the verifiers: pass@1 and maj@k.

pass@1 is greedy by default (temperature 0); with ``samples > 1`` it is the mean accuracy
of the sampled answers, and maj@k scores the most frequent extracted answer of each prompt.
The 95% interval is the normal approximation over prompts (per-prompt accuracies are the
units, so the k samples of one prompt are not counted as independent), ``evidence.stats``'
``mean_ci95``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from prime_megatron.evidence.stats import mean_ci95
from prime_megatron.rewards.extract import extract_answer
from prime_megatron.trainer.collect import PromptEncoder, score_on_rank0


@dataclass
class EvalResult:
    metrics: dict[str, float]
    per_prompt: list[float]  # mean score of each evaluated prompt, in row order
    # Every response: {"row": index in the given rows, "response", "score"}, in order.
    responses: list[dict]


def evaluate(
    engine, rows: list, encode: PromptEncoder, tokenizer, rewards, samples: int = 1, seed: int = 0
) -> EvalResult:
    """Collective. Accuracy of the engine's current weights on ``rows``."""
    encoded = [(i, r, encode(r.messages)) for i, r in enumerate(rows)]
    encoded = [(i, r, ids) for i, r, ids in encoded if ids is not None]
    indices, rows = [i for i, _, _ in encoded], [r for _, r, _ in encoded]
    prompts = [ids for _, _, ids in encoded]
    temperature = 0.0 if samples == 1 else None
    out = engine.generate(prompts, samples, seed=seed, temperature=temperature)
    texts = tokenizer.batch_decode(out.response_ids, skip_special_tokens=True)
    scores, failures = score_on_rank0(rewards, texts, [rows[g] for g in out.group_index])
    n = len(rows)
    per_prompt = prompt_means(scores, samples)
    acc, ci95 = prompt_mean_ci95(per_prompt)
    result = {
        "pass@1": acc,
        "pass@1_ci95": ci95,
        "prompts": float(n),
        "response_len": sum(len(r) for r in out.response_ids) / max(len(out.response_ids), 1),
    }
    if samples > 1:
        result[f"maj@{samples}"] = _majority_accuracy(texts, scores, samples, n)
    result.update({f"fail_{k}": float(v) for k, v in failures.items() if v})
    responses = [
        {"row": indices[g], "response": text, "score": score}
        for g, text, score in zip(out.group_index, texts, scores, strict=True)
    ]
    return EvalResult(result, per_prompt, responses)


def write_responses(path: Path, result: EvalResult) -> None:
    """``result.responses`` as jsonl, one response per line (a run's ``eval/*.jsonl``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in result.responses))


def prompt_means(scores: list[float], samples: int) -> list[float]:
    """Mean score per prompt of ``scores`` (``samples`` consecutive scores per prompt)."""
    return [sum(scores[p : p + samples]) / samples for p in range(0, len(scores), samples)]


def prompt_mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean of ``values`` (one per prompt) and the half-width of its normal 95% interval
    (sample variance; 0 for fewer than two prompts)."""
    ci95 = mean_ci95(values)
    return sum(values) / max(len(values), 1), 0.0 if ci95 is None else ci95


def paired_change(before: list[float], after: list[float]) -> tuple[float, float]:
    """Mean per-prompt change after - before on the same prompts and its 95% half-width:
    most prompts score the same both times, so this is far tighter than comparing the
    two accuracies' own intervals."""
    return prompt_mean_ci95([a - b for a, b in zip(after, before, strict=True)])


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
