"""Benchmark: PRIME vs outcome-only RLOO on the synthetic arithmetic task.

    python benchmarks/sample_efficiency.py --out runs/bench/efficiency        # 3 seeds
    python benchmarks/sample_efficiency.py --out /tmp/se --seeds 1 --steps 2 --sft-steps 20 \\
        --train-prompts 400 --eval-prompts 50 --prompts-per-step 8 --window 1 \\
        --override algo.accuracy_low=0.0 --override algo.accuracy_high=1.0   # smoke test

Hyperparameters not given as flags are the trainer's defaults (the default tiny job: the
addition-only chains with the sparse PRM, 120 steps of 16 prompts x K=4 after 1600 SFT
steps; ``--config configs/mixed_chains_prime.yaml`` for the mixed chains, the earlier
default task); the JSON line reports the resolved values. The SFT start is
the package's shipped checkpoint when the recipe is one of the shipped ones (the default
job's and the mixed chains'), else the first run trains it into OUT/sft (~20-30 min on 2
cores); 3 seeds x 2 arms of the mixed chains took 31 minutes on 2 CPU cores besides.

For each seed s = 1..--seeds, a PRIME run (``use_prm=true``) and an RLOO run
(``use_prm=false``) are trained one after the other into OUT/prime_seed<s> and
OUT/rloo_seed<s>: same SFT start (one checkpoint, OUT/sft, trained by the first run), same
hyperparameters, steps and data; ``data.seed`` = s varies the prompt order, ``run.seed``
is shared (see prime_megatron/evidence/runs.py). A run that already finished with the
same arguments is reused, so re-running only re-analyses. Every step's trained samples
are dumped (``run.dump_samples_every``) for the right-answer-wrong-step rate.

Prints one JSON line: its provenance (commit, date, machine, arguments, each arm's resolved
trainer config and overrides), final smoothed training accuracy per arm, the samples PRIME needs
to reach RLOO's final training accuracy (trained samples, and generated ones incl. the
filtered-out), held-out greedy pass@1 with 95 % intervals, seconds per step by phase
(the first --skip-steps steps left out as warm-up), the right-answer-wrong-step rate
over training, and the implicit PRM's learning (pairwise accuracy, outcome AUROC, online
first-wrong-step AUROC against the confidence/position baselines and on SFT samples; means
over the last third of training, per seed and over seeds). Writes train_accuracy.png,
raws_rate.png, time_per_step.png and prm_learning.png into OUT. With --oracle-arm a third
arm per seed, OUT/oracle_seed<s> (RLOO plus the task's exact per-token step credit, no PRM),
is compared with RLOO the same way under "oracle_vs_rloo": the most dense credit could add.
--prime-override gives the PRIME arm settings of its own (e.g. its process-stream weight),
so a PRIME variant can be compared with RLOO and oracle runs that are reused unchanged.
With --equal-time-arm a further RLOO run per seed, OUT/rloo_equal_time_seed<s>, gets PRIME's
wall-clock: as many steps as the seed's PRIME run took time (its seconds per step over the
seed's RLOO run's, the step-credit probe left out), and "equal_time" reports PRIME minus
it held out, paired by seed: whether PRIME earns its cost. The step count comes from the
finished runs' timings, so a loaded machine changes it (run the benchmark alone).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prime_megatron.evidence.efficiency import (
    accuracy_ends,
    arm_curve,
    equal_time_steps,
    heldout_comparison,
    paired_difference,
    raws_over_training,
    sample_efficiency,
    timing_comparison,
)
from prime_megatron.evidence.metrics import run_settings
from prime_megatron.evidence.prm_learning import credit_targets, over_training, seed_summary
from prime_megatron.evidence.provenance import record
from prime_megatron.evidence.runs import (
    add_run_args,
    launch,
    load_run,
    spec_from_args,
    trainer_args,
)
from prime_megatron.evidence.stats import at_most, round_floats

ARMS = {"prime": True, "rloo": False}  # arm -> use_prm
# --oracle-arm: RLOO plus the task's exact step labels as per-token process rewards, what a
# perfect PRM could add (docs/implicit-prm.md); no PRM, so it costs what RLOO costs.
ORACLE = ("algo.process_reward_source=oracle", "algo.process_gamma=0")
EQUAL_TIME = "rloo_equal_time"  # --equal-time-arm: RLOO given PRIME's wall-clock
COLORS = {"prime": "tab:blue", "rloo": "tab:orange", "oracle": "tab:green", EQUAL_TIME: "tab:red"}
TARGET_SAMPLES_RATIO = 0.5
TARGET_TIME_RATIO = 1.2
# Online step credit over training: the PRM on policy samples, its baselines on the same
# steps, and the PRM on the SFT-sample probe (the selection-effect check).
CREDIT_CURVES = {
    "credit/prm_auroc": "PRM (policy samples)",
    "credit_sft_samples/prm_auroc": "PRM (SFT samples)",
    "credit/confidence_sft_auroc": "SFT confidence",
    "credit/confidence_policy_auroc": "policy confidence",
    "credit/position_auroc": "position",
    "credit/prm_auroc_carry": "PRM, carry steps",
    "credit/confidence_sft_auroc_carry": "SFT confidence, carry steps",
}
PRM_CURVES = ("prm/pairwise_acc", "prm/outcome_auroc")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/bench/sample_efficiency"))
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (data.seed 1..N)")
    p.add_argument("--window", type=int, default=5, help="smoothing window (steps)")
    p.add_argument("--bins", type=int, default=4, help="stretches of training for the RAWS rate")
    p.add_argument("--skip-steps", type=int, default=1, help="warm-up steps left out of timing")
    oracle = "also train OUT/oracle_seed<s>: RLOO + exact per-token step credit"
    p.add_argument("--oracle-arm", action="store_true", help=oracle)
    p.add_argument("--prime-override", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="trainer override for the PRIME arm only (repeatable)")  # fmt: skip
    equal_time = f"also train OUT/{EQUAL_TIME}_seed<s>: RLOO for PRIME's wall-clock"
    p.add_argument("--equal-time-arm", action="store_true", help=equal_time)
    add_run_args(p)
    args = p.parse_args(argv)
    if args.equal_time_arm and any(o.startswith("run.steps=") for o in args.override):
        p.error("--equal-time-arm sets its arm's run.steps: give --steps, not --override run.steps")
    return args


def run_all(args: argparse.Namespace) -> dict[str, list]:
    """Train (or reuse) every run, seed by seed, PRIME then RLOO (then the oracle); load them."""
    spec = spec_from_args(args, args.out)
    runs: dict[str, list] = {arm: [] for arm in arm_args(args)}
    if args.equal_time_arm:
        runs[EQUAL_TIME] = []
    for seed in range(1, args.seeds + 1):
        for arm, (use_prm, overrides) in arm_args(args).items():
            run_dir = args.out / f"{arm}_seed{seed}"
            launch(run_dir, trainer_args(spec, run_dir, use_prm, seed, overrides))
            runs[arm].append(load_run(run_dir))
        if args.equal_time_arm:
            plan = equal_time_steps(runs["prime"][-1], runs["rloo"][-1], args.skip_steps)
            run_dir = args.out / f"{EQUAL_TIME}_seed{seed}"
            steps_override = (f"run.steps={plan['rloo_steps']}",)
            launch(run_dir, trainer_args(spec, run_dir, ARMS["rloo"], seed, steps_override))
            runs[EQUAL_TIME].append(load_run(run_dir))
    return runs


def arm_args(args: argparse.Namespace) -> dict[str, tuple[bool, tuple[str, ...]]]:
    """arm -> (use_prm, its own trainer overrides)."""
    arms = {"prime": (ARMS["prime"], tuple(args.prime_override)), "rloo": (ARMS["rloo"], ())}
    if args.oracle_arm:
        arms["oracle"] = (False, ORACLE)
    return arms


def analyse(runs: dict[str, list], args: argparse.Namespace) -> dict:
    prime, rloo = runs["prime"], runs["rloo"]
    trained = sample_efficiency(prime, rloo, args.window, "trained")
    generated = sample_efficiency(prime, rloo, args.window, "generated")
    timing = timing_comparison(prime, rloo, args.skip_steps)
    samples_ratio, time_ratio = trained["prime_over_rloo"], timing["prime_over_rloo"]
    prm = seed_summary(prime)
    held = heldout_comparison(prime, rloo)
    diff = held["prime_minus_rloo"] if held else None
    oracle = {"oracle_vs_rloo": versus_rloo(runs["oracle"], rloo, args)} if "oracle" in runs else {}
    equal_time = {"equal_time": equal_time_summary(runs, args)} if EQUAL_TIME in runs else {}
    return {
        "benchmark": "sample_efficiency",
        "seeds": args.seeds,
        **run_settings(prime[0].config),
        "window": args.window,
        "train_accuracy": {arm: accuracy_ends(runs[arm], args.window) for arm in ARMS},
        "samples_to_rloo_final": trained,
        "generated_samples_to_rloo_final": generated,
        "heldout": held,
        "heldout_sampled": heldout_comparison(prime, rloo, key="sampled_pass@1"),
        "time_per_step": timing,
        "raws_over_training": {arm: raws_over_training(runs[arm], args.bins) for arm in runs},
        "prm_last_third": prm,
        "prm_over_training": over_training(prime, [*PRM_CURVES, *CREDIT_CURVES], args.bins),
        "targets": {
            "prime_samples_le_0.5x_rloo": at_most(samples_ratio, TARGET_SAMPLES_RATIO),
            "prime_time_le_1.2x_rloo": at_most(time_ratio, TARGET_TIME_RATIO),
            "prime_heldout_ge_rloo": None if diff is None else diff >= 0,
            **credit_targets(prm),
            **equal_time_targets(equal_time.get("equal_time")),
        },
        **oracle,
        **equal_time,
    }


def equal_time_summary(runs: dict[str, list], args: argparse.Namespace) -> dict:
    """PRIME against RLOO given PRIME's wall-clock, held out ("prime" minus "rloo" is PRIME
    minus the equal-time arm; "paired": by seed). With the oracle arm, the oracle minus
    the equal-time arm too: what perfect step credit would be worth at PRIME's cost."""
    prime, rloo, equal = runs["prime"], runs["rloo"], runs[EQUAL_TIME]
    plans = [equal_time_steps(p, r, args.skip_steps) for p, r in zip(prime, rloo, strict=True)]
    out = {
        "time_ratio_per_seed": [plan["time_ratio"] for plan in plans],
        "rloo_steps_per_seed": [len(run.steps) for run in equal],
        "train_accuracy": accuracy_ends(equal, args.window),
        "heldout": heldout_comparison(prime, equal),
        "heldout_sampled": heldout_comparison(prime, equal, key="sampled_pass@1"),
    }
    if "oracle" in runs:
        out["oracle_minus_equal_time"] = {
            "greedy": paired_difference(runs["oracle"], equal),
            "sampled": paired_difference(runs["oracle"], equal, key="sampled_pass@1"),
        }
    return out


def equal_time_targets(summary: dict | None) -> dict[str, bool | None]:
    """PRIME >= RLOO at equal wall-clock, greedy and sampled (paired seed means)."""
    if summary is None:
        return {}
    out = {}
    for name, key in (("greedy", "heldout"), ("sampled", "heldout_sampled")):
        paired = (summary[key] or {}).get("paired")
        out[f"prime_{name}_ge_rloo_at_equal_time"] = None if paired is None else paired["mean"] >= 0
    return out


def versus_rloo(arm: list, rloo: list, args: argparse.Namespace) -> dict:
    """Another arm against RLOO, as PRIME is above ("prime" keys renamed to "oracle")."""
    parts = {
        "train_accuracy": accuracy_ends(arm, args.window),
        "samples_to_rloo_final": sample_efficiency(arm, rloo, args.window, "trained"),
        "heldout": heldout_comparison(arm, rloo),
        "heldout_sampled": heldout_comparison(arm, rloo, key="sampled_pass@1"),
    }
    return {
        name: {key.replace("prime", "oracle", 1): value for key, value in (part or {}).items()}
        for name, part in parts.items()
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(runs: dict[str, list], result: dict, window: int, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, arm_runs in runs.items():
        curve = arm_curve(arm_runs, window, "trained")
        x = curve["samples"]
        ax.plot(x, curve["mean"], color=COLORS[arm], label=f"{arm} (mean of {len(arm_runs)})")
        ax.fill_between(x, curve["min"], curve["max"], color=COLORS[arm], alpha=0.2)
    reach = result["samples_to_rloo_final"]
    ax.axhline(reach["target_accuracy"], color="gray", ls="--", lw=1, label="RLOO final")
    for key, arm in (("prime_samples", "prime"), ("rloo_samples", "rloo")):
        if reach[key] is not None:
            ax.axvline(reach[key], color=COLORS[arm], ls=":", lw=1)
    ax.set_xlabel("trained samples")
    ax.set_ylabel(f"training accuracy ({window}-step mean)")
    ax.set_title("PRIME vs RLOO: training accuracy (band: min-max over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_raws(raws: dict[str, list[dict]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for arm, stretches in raws.items():
        points = [s for s in stretches if s["raws_rate"] is not None]
        x = [(s["steps"][0] + s["steps"][1]) / 2 for s in points]
        rate = [100 * s["raws_rate"] for s in points]
        err = [100 * s["ci95"] for s in points]
        ax.errorbar(x, rate, yerr=err, marker="o", capsize=3, color=COLORS[arm], label=arm)
    ax.set_xlabel("training step (middle of stretch)")
    ax.set_ylabel("right answer, wrong step (% of trained samples)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_prm(rows: list[dict], path: Path) -> None:
    """PRM ranking metrics and step-credit AUROCs (seed means) over training."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = [(r["steps"][0] + r["steps"][1]) / 2 for r in rows]
    panels = ((axes[0], {k: k for k in PRM_CURVES}), (axes[1], CREDIT_CURVES))
    for ax, curves in panels:
        for key, label in curves.items():
            y = [r.get(key) for r in rows]
            if any(v is not None for v in y):
                ax.plot(x, [float("nan") if v is None else v for v in y], marker="o", label=label)
        ax.axhline(0.5, color="gray", ls="--", lw=1)
        ax.set_xlabel("training step (middle of stretch)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("fresh batch, before the PRM trains on it")
    axes[1].set_ylabel("first-wrong-step AUROC")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_timing(timing: dict, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    phases = ("rollout", "prm_update", "policy_update", "other")
    for i, arm in enumerate(ARMS):
        bottom = 0.0
        for j, phase in enumerate(phases):
            value = timing[arm][phase]
            ax.bar(i, value, bottom=bottom, color=f"C{j}", label=phase if i == 0 else None)
            bottom += value
    ax.set_xticks(range(len(ARMS)), list(ARMS))
    ax.set_ylabel("seconds per step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = run_all(args)
    result = analyse(runs, args)
    trainer = {arm: arm_runs[0].config for arm, arm_runs in runs.items()}
    overrides = {"every_arm": args.override}
    overrides.update({arm: list(own) for arm, (_, own) in arm_args(args).items()})
    provenance = record(config={"args": args, "trainer": trainer}, overrides=overrides)
    result = {"benchmark": result.pop("benchmark"), **provenance, **result}
    plots = {
        "train_accuracy.png": lambda p: plot_accuracy(runs, result, args.window, p),
        "raws_rate.png": lambda p: plot_raws(result["raws_over_training"], p),
        "time_per_step.png": lambda p: plot_timing(result["time_per_step"], p),
        "prm_learning.png": lambda p: plot_prm(result["prm_over_training"], p),
    }
    for name, draw in plots.items():
        draw(args.out / name)
    result["plots"] = [str(args.out / name) for name in plots]
    print(json.dumps(round_floats(result)), flush=True)


if __name__ == "__main__":
    main()
