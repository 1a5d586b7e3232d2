"""Ship a run's SFT checkpoint with the package: runs whose SFT recipe is the same then copy
it instead of training (``sft.use_shipped``; prime_megatron/trainer/sft.py, SHIPPED_DIR).

    python tools/ship_sft.py --run runs/default --name tiny-addition-chains [--replace]

The run must have trained (or reused) its SFT checkpoint and evaluated it before RL: the
held-out accuracy it measured goes into the shipped copy's provenance.json, with the date,
the machine and the commit checked out now (ship from the checkout that trained it).
Re-ship after changing any default that enters the recipe (model shape, sft.*,
synthetic.*, run.seed): tests/unit/test_shipped_sft.py fails until then.
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

from prime_megatron.config.loader import load_config
from prime_megatron.evidence.provenance import commit, machine
from prime_megatron.run_layout import RunLayout, read_metrics
from prime_megatron.trainer.config import TrainConfig
from prime_megatron.trainer.sft import PROVENANCE_FILE, RECIPE_FILE, SHIPPED_DIR, install_shipped


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="the run dir (its config.yaml)")
    p.add_argument("--name", required=True, help="folder name under the shipped dir")
    p.add_argument("--ckpt", type=Path, help="SFT checkpoint (default: the run's sft.checkpoint)")
    p.add_argument("--minutes", type=float, help="how long the SFT took, for the record")
    p.add_argument("--replace", action="store_true", help="replace a shipped copy of this name")
    p.add_argument("--to", type=Path, default=SHIPPED_DIR, help="the shipped dir")
    return p.parse_args(argv)


def provenance(run: Path, minutes: float | None) -> dict:
    """Where and when the checkpoint was made, and its held-out accuracy before RL."""
    before = [r for r in read_metrics(run) if r.get("event") == "eval_before"]
    if not before:
        raise SystemExit(f"error: {run} has no eval_before record (run.eval_prompts=0?)")
    accuracy = {k: v for k, v in before[0].items() if "pass@1" in k or k == "prompts"}
    took = f" in {minutes:.1f} min" if minutes else ""
    when = datetime.date.today().isoformat()
    return {
        "trained": f"{when} on {machine()}{took}, commit {commit()}",
        "heldout_before_rl": accuracy,
    }


def main(argv=None) -> None:
    args = parse(argv)
    cfg = load_config(TrainConfig, RunLayout(args.run).config)
    ckpt = args.ckpt or Path(cfg.sft.checkpoint)
    if not (ckpt / RECIPE_FILE).is_file():
        raise SystemExit(f"error: {ckpt} has no {RECIPE_FILE}: not an SFT checkpoint of a run")
    target = args.to / args.name
    if target.exists() and not args.replace:
        raise SystemExit(f"error: {target} exists (--replace to overwrite it)")
    record = provenance(args.run, args.minutes)
    install_shipped(ckpt, target)
    (target / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"shipped": str(target), **record}))


if __name__ == "__main__":
    sys.exit(main())
