"""How well, and at what cost, the implicit PRM learns under different schedules or sizes.

    python benchmarks/prm_schedule.py --out runs/bench/prm_schedule --seeds 3 \\
        --variant default= --variant one_epoch=algo.prm_epochs=1,prm_optim.lr=2e-4

Each ``--variant NAME=KEY=VALUE,KEY=VALUE`` (empty: the job as configured) is a PRIME run
of the default job (or ``--config``) per seed ``data.seed`` = 1..--seeds, all from the same
SFT start, with no held-out evaluation, sample dumps or step-credit probe: the PRM is
judged on the training batches only, never on held-out prompts. A finished run with the
same arguments is reused.

Prints one JSON line: per variant, the PRM's pairwise accuracy and outcome AUROC (means over
the last third of training, per seed, their mean and 95 % interval over seeds), the
training accuracy over the same stretch, and the seconds and forward-pass units per step
(after --skip warm-up steps).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prime_megatron.evidence.metrics import forward_units, pass_counts, phase_means, tail_means
from prime_megatron.evidence.prm_learning import seed_summary
from prime_megatron.evidence.provenance import record
from prime_megatron.evidence.runs import RunSpec, launch, load_run, read_config, trainer_args
from prime_megatron.evidence.stats import round_floats

REPORTED = ("prm/pairwise_acc", "prm/outcome_auroc")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="run dirs go here")
    p.add_argument("--variant", action="append", required=True, metavar="NAME=OVERRIDES",
                   help="named, comma-separated trainer overrides (repeatable)")  # fmt: skip
    p.add_argument("--seeds", type=int, default=3, help="data.seed 1..N per variant")
    p.add_argument("--skip", type=int, default=2, help="first steps left out of the timing")
    p.add_argument("--config", help="trainer YAML config (default: the default job)")
    return p.parse_args(argv)


def variants(specs: list[str]) -> dict[str, list[str]]:
    """``NAME=K=V,K=V`` -> {NAME: [K=V, ...]}."""
    out = {}
    for spec in specs:
        name, _, overrides = spec.partition("=")
        if not name or name in out:
            raise SystemExit(f"--variant {spec!r}: needs a new NAME before '='")
        out[name] = [o for o in overrides.split(",") if o]
    return out


def variant_report(run_dirs: list[Path], skip: int) -> dict:
    """The PRM's learning over the seeds, the training accuracy, the cost per step."""
    runs = [load_run(d) for d in run_dirs]
    summary = seed_summary(runs)
    timed = [s for r in runs for s in r.steps[skip:]]
    return {
        **{key: summary[key] for key in REPORTED if key in summary},
        "train_accuracy": [
            tail_means(r.steps, ("rollout/accuracy",)).get("rollout/accuracy") for r in runs
        ],  # fmt: skip
        "seconds_per_step": phase_means(timed, 0)["step"],
        "units_per_step": forward_units(pass_counts(timed)),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    spec = RunSpec(sft_checkpoint=str(args.out / "sft"), eval_prompts=0, dump_every=0,
                   credit_every=0, config=args.config)  # fmt: skip
    report, trainers = {}, {}
    for name, overrides in variants(args.variant).items():
        dirs = []
        for seed in range(1, args.seeds + 1):
            run_dir = args.out / f"{name}_seed{seed}"
            launch(run_dir, trainer_args(spec, run_dir, True, seed, arm=overrides))
            dirs.append(run_dir)
        report[name] = variant_report(dirs, args.skip)
        trainers[name] = read_config(dirs[0])
    result = {
        "benchmark": "prm_schedule",
        **record(config={"args": args, "trainer": trainers}, overrides=variants(args.variant)),
        "variants": report,
    }
    print(json.dumps(round_floats(result)), flush=True)


if __name__ == "__main__":
    main()
