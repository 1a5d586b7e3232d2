"""Does the online implicit PRM learn? Its ``prm/*`` and ``credit/*`` metrics (logged by the
trainer on every step's fresh batch, ``run.step_credit_every``) and ``adv/process_share``
over the seeds of an arm.

Per seed, a metric's value is its mean over the last third of training (``tail_means``);
the arm's value is the mean over seeds with a 95 % interval across seeds. ``over_training``
gives the seed-mean of each metric in ``bins`` contiguous stretches of steps, for curves.
"""

from __future__ import annotations

from collections.abc import Sequence

from prime_megatron.evidence.metrics import RunRecord, tail_means
from prime_megatron.evidence.stats import at_least, even_chunks, mean_ci95

# adv/process_share: whether the policy's update listens to the PRM at all.
PREFIXES = ("prm/", "credit/", "credit_sft_samples/", "adv/process_share")


def seed_summary(runs: Sequence[RunRecord]) -> dict[str, dict]:
    """metric -> {"mean", "ci95", "per_seed"} over the runs' last-third means."""
    tails = [tail_means(r.steps, PREFIXES) for r in runs]
    keys = sorted({k for t in tails for k in t if k.startswith(PREFIXES)})
    out = {}
    for key in keys:
        values = [t[key] for t in tails if key in t]
        out[key] = {"mean": sum(values) / len(values), "ci95": mean_ci95(values),
                    "per_seed": values}  # fmt: skip
    return out


def over_training(runs: Sequence[RunRecord], keys: Sequence[str], bins: int) -> list[dict]:
    """Seed-mean of each metric in ``bins`` stretches of steps (steps that logged it)."""
    steps = sorted({r["step"] for run in runs for r in run.steps})
    out = []
    for stretch in map(set, even_chunks(steps, bins)):
        row: dict = {"steps": [min(stretch), max(stretch)]}
        for key in keys:
            means = (_stretch_mean(run, key, stretch) for run in runs)
            per_seed = [m for m in means if m is not None]
            row[key] = sum(per_seed) / len(per_seed) if per_seed else None
        out.append(row)
    return out


def _stretch_mean(run: RunRecord, key: str, stretch: set[int]) -> float | None:
    values = [r[key] for r in run.steps if r["step"] in stretch and r.get(key) is not None]
    return sum(values) / len(values) if values else None


def credit_targets(summary: dict[str, dict]) -> dict[str, bool | None]:
    """The PRM and step-credit targets on the last third of training (None: not measured)."""

    def mean(key: str) -> float | None:
        return summary[key]["mean"] if key in summary else None

    def above(key: str, baseline: str) -> bool | None:
        a, b = mean(key), mean(baseline)
        return None if a is None or b is None else a > b

    return {
        "pairwise_acc_ge_0.75": at_least(mean("prm/pairwise_acc"), 0.75),
        "outcome_auroc_ge_0.8": at_least(mean("prm/outcome_auroc"), 0.8),
        "step_auroc_ge_0.8": at_least(mean("credit/prm_auroc"), 0.8),
        "step_auroc_above_sft_confidence": above("credit/prm_auroc", "credit/confidence_sft_auroc"),
        "step_auroc_above_policy_confidence": above(
            "credit/prm_auroc", "credit/confidence_policy_auroc"
        ),
        "carry_auroc_above_sft_confidence": above(
            "credit/prm_auroc_carry", "credit/confidence_sft_auroc_carry"
        ),
    }
