"""A finished run as the benchmarks see it: its per-step metrics, its events (held-out
evaluation before/after RL) and the right-answer-wrong-step counts of its dumped samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from prime_megatron.evidence.samples import RawsCount

# Timed phases of a step (values of trainer.phases.Phase); "other" is the rest of time/step.
PHASES = ("rollout", "logprobs", "prm_update", "policy_update", "weight_sync", "step_credit")


@dataclass
class RunRecord:
    name: str
    steps: list[dict]  # metrics.jsonl step lines, in step order
    events: dict[str, dict]  # event name -> its line (eval_before, eval_after)
    config: dict = field(default_factory=dict)  # the run's resolved config.yaml
    raws: dict[int, RawsCount] = field(default_factory=dict)  # dumped step -> counts

    @property
    def samples_per_prompt(self) -> int:
        return int(self.config.get("batch", {}).get("samples_per_prompt", 1))


# What a benchmark reports about its runs' setup: name -> (section, field) of config.yaml.
SETTINGS = {
    "steps": ("run", "steps"),
    "prompts_per_step": ("batch", "prompts_per_step"),
    "k": ("batch", "samples_per_prompt"),
    "sft_steps": ("sft", "steps"),
    "p_two_digit": ("synthetic", "p_two_digit"),
    "policy_lr": ("policy_optim", "lr"),
    "prm_lr": ("prm_optim", "lr"),
    "beta": ("algo", "beta"),
    "process_reward_norm": ("algo", "process_reward_norm"),
    "prm_update": ("algo", "prm_update"),
    "eval_prompts": ("run", "eval_prompts"),
}


def run_settings(config: dict) -> dict:
    """The headline hyperparameters of a resolved config (None where absent)."""
    return {name: config.get(section, {}).get(key) for name, (section, key) in SETTINGS.items()}


def split_rows(rows: Sequence[dict]) -> tuple[list[dict], dict[str, dict]]:
    """metrics.jsonl lines -> (step lines sorted by step, last line of each event)."""
    steps = sorted((r for r in rows if "event" not in r and "step" in r), key=lambda r: r["step"])
    events = {r["event"]: r for r in rows if "event" in r}
    return steps, events


def series(steps: Sequence[dict], key: str, default: float = 0.0) -> list[float]:
    """One metric per step; ``default`` where a step lacks it (e.g. nothing was trained)."""
    return [float(r[key]) if r.get(key) is not None else default for r in steps]


def samples_series(run: RunRecord, kind: str) -> list[float]:
    """Samples per step: ``trained`` (after the filter) or ``generated`` (all rollouts,
    including filtered-out and oversampled groups)."""
    if kind == "trained":
        return series(run.steps, "train/samples")
    if kind == "generated":
        return [p * run.samples_per_prompt for p in series(run.steps, "rollout/prompts")]
    raise ValueError(f"unknown sample kind {kind!r}")


def phase_means(steps: Sequence[dict], skip: int = 1) -> dict[str, float]:
    """Mean seconds per step of each phase over ``steps[skip:]`` (the first steps carry
    warm-up), plus ``step`` (the total), ``other`` = step - rollout - prm_update -
    policy_update (the four-way split of the time plots) and ``untimed`` = step - all PHASES."""
    kept = list(steps[skip:]) or list(steps)
    if not kept:
        return {}
    mean = {p: sum(series(kept, f"time/{p}")) / len(kept) for p in PHASES}
    total = sum(series(kept, "time/step")) / len(kept)
    mean["step"] = total
    mean["other"] = total - mean["rollout"] - mean["prm_update"] - mean["policy_update"]
    mean["untimed"] = total - sum(mean[p] for p in PHASES)
    return mean


def tail_means(steps: Sequence[dict], prefixes: Sequence[str], fraction: float = 1 / 3) -> dict:
    """Mean of every metric starting with one of ``prefixes`` over the last ``fraction`` of
    ``steps`` (the steps that have it), and ``first_step`` / ``last_step`` of that stretch.
    A learning curve's tail, not one noisy step. Empty without such steps."""
    if not steps:
        return {}
    tail = list(steps[int(len(steps) * (1 - fraction)) :])
    keys = sorted({k for r in tail for k in r if k.startswith(tuple(prefixes))})
    out: dict = {"first_step": tail[0].get("step"), "last_step": tail[-1].get("step")}
    for key in keys:
        values = [float(r[key]) for r in tail if r.get(key) is not None]
        if values:
            out[key] = sum(values) / len(values)
    return out


# Forward-pass units of a pass kind (``passes/<model>_<kind>``): a backward costs ~2 forwards.
PASS_UNITS = {"forward": 1, "train": 3}


def pass_counts(steps: Sequence[dict]) -> dict[str, float]:
    """Mean passes per step by ``<model>_<kind>`` (the trainer's ``passes/*``; a pass over
    the whole batch counts 1); empty when the runs did not count them."""
    keys = sorted({k for s in steps for k in s if k.startswith("passes/")})
    return {k.removeprefix("passes/"): sum(s.get(k, 0.0) for s in steps) / len(steps)
            for k in keys}  # fmt: skip


def forward_units(counts: dict[str, float]) -> float | None:
    """``pass_counts`` in forward-pass units (None without counts)."""
    if not counts:
        return None
    return sum(n * PASS_UNITS[key.rsplit("_", 1)[1]] for key, n in counts.items())
