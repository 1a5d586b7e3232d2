"""PRIME vs outcome-only RLOO from finished runs (several seeds per arm): training-accuracy
curves, samples to reach RLOO's final training accuracy, held-out accuracy, time per step
by phase, and the right-answer-wrong-step rate over training.

Training accuracy is ``rollout/accuracy`` (all sampled responses of the step, before the
filter), smoothed by a trailing mean over ``window`` steps (full windows only). The target
is RLOO's final smoothed seed-mean accuracy; each arm's samples-to-target is the cumulative
sample count at the first step where its smoothed seed-mean curve reaches it (for RLOO
this is at most ``rloo_samples_at_end``, earlier if it got there before the end). If
RLOO's training accuracy did not rise (compare ``accuracy_ends``), reaching its final
accuracy is trivial and the ratio says nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from prime_megatron.evidence.metrics import RunRecord, phase_means, samples_series
from prime_megatron.evidence.samples import pool_counts
from prime_megatron.evidence.stats import (
    cumulative,
    diff_ci95,
    even_chunks,
    mean_t_ci95,
    moving_average,
    proportion_ci95,
    ratio,
    samples_to_reach,
    seed_spread,
)

ACCURACY = "rollout/accuracy"


def smoothed_curve(run: RunRecord, window: int, kind: str) -> tuple[list[float], list[float]]:
    """(smoothed accuracy, cumulative samples at each window's last step). Steps served
    entirely from the carry-over buffer generate nothing and have no accuracy: they are
    skipped, but the samples they train on still count."""
    spent = cumulative(samples_series(run, kind))
    points = [(r[ACCURACY], s) for r, s in zip(run.steps, spent, strict=True)
              if r.get(ACCURACY) is not None]  # fmt: skip
    accuracy = [a for a, _ in points]
    return moving_average(accuracy, window), [s for _, s in points][window - 1 :]


def arm_curve(runs: Sequence[RunRecord], window: int, kind: str) -> dict[str, list[float]]:
    """Seed spread of the smoothed curves, with the seed-mean samples axis."""
    curves = [smoothed_curve(r, window, kind) for r in runs]
    spread = seed_spread([acc for acc, _ in curves])
    spread["samples"] = seed_spread([spent for _, spent in curves])["mean"][: len(spread["mean"])]
    return spread


def reach(
    prime: tuple[list[float], list[float]], rloo: tuple[list[float], list[float]]
) -> dict[str, float | None]:
    """Samples each arm needs to reach RLOO's final accuracy; curves are (acc, samples)."""
    target = rloo[0][-1]
    rloo_samples = samples_to_reach(*rloo, target)
    prime_samples = samples_to_reach(*prime, target)
    return {
        "target_accuracy": target,
        "rloo_samples": rloo_samples,
        "rloo_samples_at_end": rloo[1][-1],
        "prime_samples": prime_samples,
        "prime_over_rloo": ratio(prime_samples, rloo_samples),
    }


def sample_efficiency(
    prime: Sequence[RunRecord], rloo: Sequence[RunRecord], window: int, kind: str = "trained"
) -> dict:
    """On the seed-mean curves, and per seed pair (PRIME seed i against RLOO seed i)."""
    p, r = arm_curve(prime, window, kind), arm_curve(rloo, window, kind)
    if not p["mean"] or not r["mean"]:
        raise ValueError(f"runs shorter than the smoothing window ({window} steps)")
    out = reach((p["mean"], p["samples"]), (r["mean"], r["samples"]))
    out["per_seed"] = [
        reach(smoothed_curve(a, window, kind), smoothed_curve(b, window, kind))["prime_over_rloo"]
        for a, b in zip(prime, rloo, strict=False)
    ]
    return out


def accuracy_ends(runs: Sequence[RunRecord], window: int) -> dict[str, float]:
    """First and last point of the arm's smoothed seed-mean training accuracy."""
    mean = arm_curve(runs, window, "trained")["mean"]
    return {"start": mean[0], "final": mean[-1]} if mean else {}


def heldout(
    runs: Sequence[RunRecord], event: str = "eval_after", key: str = "pass@1"
) -> dict | None:
    """Held-out accuracy ``key`` (greedy ``pass@1`` or ``sampled_pass@1``) per seed with its
    interval and paired change since before RL, and pooled over seeds (every evaluated
    prompt counted as an independent trial; the seeds share the held-out prompts, so the
    pooled interval understates prompt-sampling noise)."""
    evals = [r.events[event] for r in runs if key in r.events.get(event, {})]
    if not evals:
        return None
    n = sum(int(e["prompts"]) for e in evals)
    p = sum(e[key] * e["prompts"] for e in evals) / n
    return {
        "pass@1": p,
        "ci95": proportion_ci95(p, n),
        "per_seed": [e[key] for e in evals],
        "per_seed_ci95": [e.get(key + "_ci95") for e in evals],
        "per_seed_paired_change": [e.get(key + "_change") for e in evals],
        "prompts_per_seed": int(evals[0]["prompts"]),
    }


def heldout_comparison(
    prime: Sequence[RunRecord], rloo: Sequence[RunRecord], key: str = "pass@1"
) -> dict | None:
    """After RL per arm and their difference; before RL (the shared SFT model, evaluated
    on the same prompts by every run) from the first run, with every run's value."""
    after = {"prime": heldout(prime, key=key), "rloo": heldout(rloo, key=key)}
    both = after["prime"] is not None and after["rloo"] is not None
    before = heldout([*prime, *rloo][:1], "eval_before", key)
    if before is None and not both:
        return None
    if before is not None:
        before["per_run"] = [r.events.get("eval_before", {}).get(key) for r in [*prime, *rloo]]
        for field in ("per_seed", "per_seed_ci95", "per_seed_paired_change"):
            del before[field]
    return {
        **after,
        "before": before,
        "prime_minus_rloo": after["prime"]["pass@1"] - after["rloo"]["pass@1"] if both else None,
        "diff_ci95": diff_ci95(after["prime"]["ci95"], after["rloo"]["ci95"]) if both else None,
        "paired": paired_difference(prime, rloo, key) if both else None,
    }


def paired_difference(
    a: Sequence[RunRecord], b: Sequence[RunRecord], key: str = "pass@1"
) -> dict | None:
    """Held-out ``key`` after RL, ``a`` minus ``b`` seed by seed (runs paired by position:
    same seed, same SFT start and held-out prompts), with the mean and its t interval over
    seeds (the seed-to-seed spread, which the pooled ``diff_ci95`` leaves out)."""
    diffs = [
        x.events["eval_after"][key] - y.events["eval_after"][key]
        for x, y in zip(a, b, strict=False)
        if key in x.events.get("eval_after", {}) and key in y.events.get("eval_after", {})
    ]
    if not diffs:
        return None
    return {"per_seed": diffs, "mean": sum(diffs) / len(diffs), "ci95_t": mean_t_ci95(diffs)}


def arm_timing(runs: Sequence[RunRecord], skip: int) -> dict[str, float]:
    """Seconds per step by phase, averaged over the arm's runs."""
    per_run = [phase_means(r.steps, skip) for r in runs]
    return {k: sum(m[k] for m in per_run) / len(per_run) for k in per_run[0]}


def timing_comparison(prime: Sequence[RunRecord], rloo: Sequence[RunRecord], skip: int) -> dict:
    p, r = arm_timing(prime, skip), arm_timing(rloo, skip)
    return {
        "prime": p,
        "rloo": r,
        "prime_over_rloo": ratio(p["step"], r["step"]),
        "prime_over_rloo_excluding_rollout": ratio(
            p["step"] - p["rollout"], r["step"] - r["rollout"]
        ),
    }


def equal_time_steps(prime: RunRecord, rloo: RunRecord, skip: int) -> dict[str, float]:
    """The RLOO steps that cost what the PRIME run cost: its steps times PRIME's seconds per
    step over RLOO's, both measured on these runs (first ``skip`` steps left out). PRIME's
    step-credit measurement is a benchmark probe, not part of PRIME, and is left out."""
    p, r = phase_means(prime.steps, skip), phase_means(rloo.steps, skip)
    time_ratio = ratio(p["step"] - p["step_credit"], r["step"])
    if time_ratio is None:
        raise ValueError(f"{rloo.name} has no step times to compare {prime.name} with")
    return {"time_ratio": time_ratio, "rloo_steps": round(len(prime.steps) * time_ratio)}


def raws_over_training(runs: Sequence[RunRecord], bins: int) -> list[dict]:
    """Right-answer-wrong-step counts pooled over the runs, in ``bins`` stretches of steps."""
    steps = sorted({s for r in runs for s in r.raws})
    out = []
    for stretch in even_chunks(steps, bins):
        total = pool_counts(r.raws[s] for r in runs for s in stretch if s in r.raws)
        rates = total.rates()
        rate = rates["raws_rate"]
        rates["ci95"] = proportion_ci95(rate, total.samples) if rate is not None else None
        out.append({"steps": [stretch[0], stretch[-1]], **rates})
    return out
