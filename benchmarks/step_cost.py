"""What a PRIME step costs next to an outcome-only RLOO step, phase by phase and pass by pass.

    python benchmarks/step_cost.py --out runs/bench/step_cost              # ~6 min on 2 cores
    python benchmarks/step_cost.py --out /tmp/sc --checkout /path/to/other/checkout

Trains the default job (or ``--config``) twice from its shipped SFT start, one run after
the other: PRIME (``use_prm=true``) and RLOO (``use_prm=false``), same seed, same prompts,
``--steps`` steps each, no held-out evaluation, no sample dumps, no step-credit probe. Both
runs' steps are averaged after the first ``--skip`` (warm-up); ``--skip`` and the kept
steps are even because the rollout's oversampling fills two steps per generation.

Prints one JSON line: per arm the seconds per step of every timed phase and ``untimed``
(time/step minus the phases: what no phase covers), the passes per step by model and kind
(``passes/*``: a full-batch forward counts 1, a forward+backward 1 in ``train``) and their
cost in forward units (forward 1, forward+backward 3); then PRIME / RLOO per step, with and
without the rollout. ``--prime-override`` changes the PRIME arm only (e.g. a PRM of its own
start, which an RLOO run does not load). ``--checkout`` runs the trainer of another
checkout (a before/after comparison: its commit is recorded as ``trainer_commit``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from prime_megatron.evidence.metrics import forward_units, pass_counts, split_rows
from prime_megatron.evidence.provenance import record
from prime_megatron.evidence.runs import RunSpec, launch, read_config, trainer_args
from prime_megatron.evidence.stats import round_floats
from prime_megatron.run_layout import read_metrics

ARMS = {"prime": True, "rloo": False}  # arm -> use_prm
NOT_PHASES = ("time/step", "time/tokens_per_s")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="run dirs go here")
    p.add_argument("--steps", type=int, default=30, help="RL steps per arm")
    p.add_argument("--skip", type=int, default=2, help="first steps left out (warm-up)")
    p.add_argument("--seed", type=int, default=1, help="data.seed of both arms")
    p.add_argument("--config", help="trainer YAML config (default: the default job)")
    p.add_argument("--checkout", type=Path, help="run the trainer of this checkout instead")
    p.add_argument("--override", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="trainer override for both arms (repeatable)")  # fmt: skip
    p.add_argument("--prime-override", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="trainer override for the PRIME arm only (repeatable)")  # fmt: skip
    args = p.parse_args(argv)
    if args.skip % 2 or (args.steps - args.skip) % 2 or args.steps <= args.skip:
        p.error("--skip and --steps - --skip must be even, and --steps > --skip")
    return args


def arm_cost(steps: list[dict]) -> dict:
    """Mean seconds per step of each phase, ``untimed``, the passes and their units."""
    phases = sorted({k for s in steps for k in s if k.startswith("time/")} - set(NOT_PHASES))
    mean = {k.removeprefix("time/"): sum(s.get(k, 0.0) for s in steps) / len(steps)
            for k in phases}  # fmt: skip
    step = sum(s["time/step"] for s in steps) / len(steps)
    counts = pass_counts(steps)
    return {"step": step, "phases": mean, "untimed": step - sum(mean.values()),
            "passes": counts or None, "units": forward_units(counts)}  # fmt: skip


def checkout_commit(checkout: Path) -> str:
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.checkout:  # the launched trainer (python -m) imports prime_megatron from there
        args.out = args.out.resolve()
        os.environ["PYTHONPATH"] = str(args.checkout.resolve())
        os.chdir(args.checkout)
    spec = RunSpec(sft_checkpoint=str(args.out / "sft"), eval_prompts=0, dump_every=0,
                   credit_every=0, steps=args.steps, config=args.config,
                   extra=list(args.override))  # fmt: skip
    arms = {}
    for arm, use_prm in ARMS.items():
        run_dir = args.out / arm
        own = args.prime_override if use_prm else []
        launch(run_dir, trainer_args(spec, run_dir, use_prm, seed=args.seed, arm=own))
        steps, _ = split_rows(read_metrics(run_dir))
        arms[arm] = arm_cost(steps[args.skip :])
    prime, rloo = arms["prime"], arms["rloo"]
    rollout = {arm: cost["phases"].get("rollout", 0.0) for arm, cost in arms.items()}
    trainers = {arm: read_config(args.out / arm) for arm in ARMS}
    result = {
        "benchmark": "step_cost",
        **record(
            config={"args": args, "trainer": trainers},
            overrides={"both": args.override, "prime": args.prime_override},
        ),
        "trainer_commit": checkout_commit(args.checkout) if args.checkout else None,
        "steps_kept": args.steps - args.skip,
        "arms": arms,
        "prime_over_rloo": prime["step"] / rloo["step"],
        "prime_over_rloo_excluding_rollout": (prime["step"] - rollout["prime"])
        / (rloo["step"] - rollout["rloo"]),
    }
    print(json.dumps(round_floats(result)), flush=True)


if __name__ == "__main__":
    main()
