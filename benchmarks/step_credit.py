"""Benchmark: do PRIME's implicit process rewards locate the first wrong step?

    python benchmarks/step_credit.py --run-dir runs/bench/sample_efficiency/prime_seed1 \\
        --run-dir runs/bench/sample_efficiency/prime_seed2     # runs with dumped samples
    python benchmarks/step_credit.py --launch runs/bench/step_credit     # its own PRIME run

Reads the samples a PRIME run dumped while training (``run.dump_samples_every``; with
``--launch`` it trains one PRIME run first, dumping every step, into OUT/prime_seed1 with
the shared-SFT layout of benchmarks/sample_efficiency.py). For each sampled response, a
step's reward is the sum of the token rewards q = log pi_prm - log pi_ref over the step's
line, where q comes from the PRM that scored that batch (before it trained on it: the
default ``algo.prm_update=after``). "Step is wrong" is scored by -reward; definitions of
the AUROCs and baselines are in prime_megatron/evidence/credit.py. Several --run-dir are
pooled step by step.

Prints one JSON line: the untrained PRM (the step-1 dump, q = 0), --bins stretches of the
later dumps (how step AUROC changes over training), all later dumps pooled, and the
right-answer-wrong-step responses alone; each with the random-direction baseline
(--repeats sign flips) and the position baseline. ``auroc_final`` is the last stretch's
first-wrong-vs-preceding AUROC, the figure the >= 0.8 target is checked on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prime_megatron.evidence.credit import credit_report
from prime_megatron.evidence.metrics import run_settings
from prime_megatron.evidence.provenance import record
from prime_megatron.evidence.runs import (
    add_run_args,
    launch,
    load_samples,
    read_config,
    spec_from_args,
    trainer_args,
)
from prime_megatron.evidence.stats import at_least, round_floats

TARGET_AUROC = 0.8


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", type=Path, action="append", help="PRIME run with dumps")
    source.add_argument("--launch", type=Path, metavar="OUT", help="train one PRIME run here")
    p.add_argument("--bins", type=int, default=4, help="stretches of training")
    p.add_argument("--repeats", type=int, default=20, help="random-direction sign flips")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    add_run_args(p)
    return p.parse_args(argv)


def run_dirs(args: argparse.Namespace) -> list[Path]:
    if args.run_dir:
        return args.run_dir
    run_dir = args.launch / "prime_seed1"
    launch(run_dir, trainer_args(spec_from_args(args, args.launch), run_dir, True, seed=1))
    return [run_dir]


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    dirs = run_dirs(args)
    samples = [s for d in dirs for s in load_samples(d)]
    if not samples:
        raise SystemExit(f"no dumped samples in {[str(d) for d in dirs]} (run.dump_samples_every)")
    report = credit_report(samples, args.bins, args.repeats, args.seed)
    final = report["over_training"][-1]["auroc"] if report["over_training"] else None
    result = {
        "benchmark": "step_credit",
        **record(config={"args": args, "trainer": read_config(dirs[0])}),
        "runs": [str(d) for d in dirs],
        **run_settings(read_config(dirs[0])),
        **report,
        "auroc_final": final,
        "target_auroc_ge_0.8": at_least(final, TARGET_AUROC),
    }
    print(json.dumps(round_floats(result)), flush=True)


if __name__ == "__main__":
    main()
