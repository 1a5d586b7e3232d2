"""Benchmark: tools/plan.py's memory estimate vs the measured peak RSS of real CPU runs.

    python benchmarks/plan_check.py            # three configs, ~10 min on 2 cores
    python benchmarks/plan_check.py --quick    # the tiny job and one mid-sized model

Each config trains one RL step (PRM, reference and policy updates, weight sync) of the
default job with the overrides below, in a fresh trainer process; its peak RSS is the
kernel's high-water mark for that process (``os.wait4``; vLLM runs in-process on CPU).
The plan is ``planning.plan_memory`` for the same config at ``--platform cpu`` with no
runtime share; the runtime R (libraries, vLLM's engine, allocator state: what the plan
does not model) is calibrated once on the tiny job, whose planned parts are a small share
of its RSS: R = peak RSS(tiny) - plan(tiny). Every other config is then predicted as
plan + R and must land within 20 % of its measured peak.

Configs: the tiny job; a 43M-parameter model (hidden 768, 6 layers, 12 heads, ffn 2048)
whose weights, moments, grads and activations are GiBs; the same with twice the
micro-batch and 128-token responses (activations dominate). The PRM-accuracy filter is
off (a nearly random model solves nothing) and the SFT is one step of 8 samples (its
checkpoint goes into the run dir). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from prime_megatron.evidence.provenance import record
from prime_megatron.run_layout import RunLayout

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 0.2
MIB = 2**20
COMMON = [
    "run.steps=1",
    "run.eval_prompts=0",
    "run.save_every=0",
    "run.export_hf=false",
    "run.plot=false",
    "run.resume=never",
    "sft.steps=1",  # the synthetic model starts from an SFT checkpoint; one small step
    "sft.batch_size=8",
    "algo.filter_accuracy=false",
    "batch.prompts_per_step=4",
]
MID = [
    "model.hidden_size=768",
    "model.num_layers=6",
    "model.num_heads=12",
    "model.ffn_hidden_size=2048",
]
CONFIGS = {
    "tiny": [],
    "mid_43m": MID,
    "mid_43m_long": [
        *MID,
        "batch.prompts_per_step=8",
        "batch.micro_batch_size=32",
        "rollout.max_response_len=128",
    ],  # fmt: skip
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="only tiny and mid_43m")
    p.add_argument("--workdir", type=Path, help="where the runs go (default: a temp dir)")
    return p.parse_args(argv)


def planned_bytes(overrides: list[str]) -> int:
    """The plan's peak per rank for the config, without the runtime share."""
    from prime_megatron.planning.inputs import plan_inputs, validate_for_plan
    from prime_megatron.planning.memory import plan_memory
    from prime_megatron.planning.source import resolve_model
    from prime_megatron.trainer.config import load_train_config

    cfg = load_train_config(None, overrides)
    validate_for_plan(cfg, 1)
    arch, vocab, _ = resolve_model(cfg)
    inp = plan_inputs(cfg, 1, 1024.0, "cpu", vocab, runtime_gib=0.0)
    return plan_memory(arch, inp).peak_bytes


def measured_peak_rss(overrides: list[str], run_dir: Path) -> int:
    """Peak RSS in bytes of one trainer process running the config."""
    dirs = [f"run.output_dir={run_dir}", f"sft.checkpoint={run_dir}/sft"]
    cmd = [sys.executable, "-m", "prime_megatron.train", *dirs, *overrides]
    log = run_dir.with_suffix(".log")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"trainer failed for {run_dir.name}:\n{tail}")
    return usage.ru_maxrss * 1024  # Linux reports KiB


def predict(row: dict, tiny: dict, runtime_mib: float) -> None:
    """Add the prediction (plan + runtime) and the planned vs measured growth over tiny."""
    row["predicted_mib"] = row["planned_mib"] + runtime_mib
    row["predicted_over_measured"] = row["predicted_mib"] / row["measured_mib"]
    grown = row["measured_mib"] - tiny["measured_mib"]
    if grown > 0:
        row["planned_growth_over_measured"] = (row["planned_mib"] - tiny["planned_mib"]) / grown


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    names = ["tiny", "mid_43m"] if args.quick else list(CONFIGS)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="plan_check_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in names:
        overrides = [*COMMON, *CONFIGS[name]]
        print(f"{name}: training one step ...", file=sys.stderr, flush=True)
        rows[name] = {
            "planned_mib": planned_bytes(overrides) / MIB,
            "measured_mib": measured_peak_rss(overrides, work / name) / MIB,
        }
    runtime = rows["tiny"]["measured_mib"] - rows["tiny"]["planned_mib"]
    for row in rows.values():
        predict(row, rows["tiny"], runtime)
    checked = [n for n in rows if n != "tiny"]
    within = all(abs(rows[n]["predicted_over_measured"] - 1) <= TOLERANCE for n in checked)
    rounded = {n: {k: round(v, 3) for k, v in r.items()} for n, r in rows.items()}
    trainer = {n: yaml.safe_load(RunLayout(work / n).config.read_text()) for n in rows}
    provenance = record(config={"args": args, "trainer": trainer},
                        overrides={n: [*COMMON, *CONFIGS[n]] for n in rows})  # fmt: skip
    print(json.dumps({"benchmark": "plan_check", **provenance, "runtime_mib": round(runtime, 1),
                      "configs": rounded, "target_within_20pct": within}))  # fmt: skip


if __name__ == "__main__":
    main()
