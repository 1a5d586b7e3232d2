"""Launching the trainer for the evidence benchmarks and reading its outputs back.

Every run of a benchmark shares ``run.seed`` (it fixes the synthetic data split, the
held-out prompts and the SFT recipe, so one SFT checkpoint serves all runs); the per-run
seed is ``data.seed`` (the order in which training prompts are drawn). PRIME and RLOO runs
with the same seed therefore start from the same SFT model on the same prompt order with
the same rollout sampling seeds (common random numbers); seeds differ in RL only. The
spread over seeds is thus RL noise, not SFT noise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from prime_megatron.evidence.metrics import RunRecord, split_rows
from prime_megatron.evidence.samples import DecodedSample, decode_sample, piece_table, raws_by_step
from prime_megatron.run_layout import RunLayout, read_metrics


@dataclass
class RunSpec:
    """What every run of a benchmark shares; None = the trainer's default."""

    sft_checkpoint: str
    eval_prompts: int = 1000
    run_seed: int = 1
    dump_every: int = 1
    credit_every: int = 2  # run.step_credit_every (PRIME runs measure online step credit)
    steps: int | None = None
    prompts_per_step: int | None = None
    samples_per_prompt: int | None = None
    sft_steps: int | None = None
    train_prompts: int | None = None
    config: str | None = None
    extra: list[str] = field(default_factory=list)  # passthrough overrides (win)


# RunSpec field -> trainer key, passed only when set (the default job's values otherwise).
OPTIONAL_KEYS = {
    "steps": "run.steps",
    "prompts_per_step": "batch.prompts_per_step",
    "samples_per_prompt": "batch.samples_per_prompt",
    "sft_steps": "sft.steps",
    "train_prompts": "synthetic.train_prompts",
}
DEFAULT_HELDOUT = 1000  # synthetic.heldout_prompts of the trainer


def add_run_args(p: argparse.ArgumentParser) -> None:
    """The flags that fill a RunSpec. Unset hyperparameters keep the trainer's defaults
    (the default tiny job), so an SFT checkpoint of that job has the same recipe."""
    default = "default: the trainer's"
    p.add_argument("--steps", type=int, help=f"RL steps per run ({default})")
    p.add_argument("--prompts-per-step", type=int, help=f"groups trained per step ({default})")
    p.add_argument("--k", type=int, help=f"samples per prompt ({default})")
    p.add_argument("--sft-steps", type=int, help=f"SFT steps ({default})")
    p.add_argument("--train-prompts", type=int, help=f"synthetic.train_prompts ({default})")
    p.add_argument("--sft-checkpoint", help="shared SFT checkpoint (default OUT/sft)")
    p.add_argument("--eval-prompts", type=int, default=1000, help="held-out prompts, before/after")
    p.add_argument("--run-seed", type=int, default=1, help="run.seed shared by every run")
    p.add_argument("--dump-every", type=int, default=1, help="run.dump_samples_every")
    p.add_argument("--credit-every", type=int, default=2, help="run.step_credit_every")
    p.add_argument("--config", help="trainer YAML config (default: the built-in tiny job)")
    p.add_argument("--override", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="extra trainer override for every run (repeatable)")  # fmt: skip


def spec_from_args(args: argparse.Namespace, out: Path) -> RunSpec:
    return RunSpec(
        sft_checkpoint=str(args.sft_checkpoint or out / "sft"),
        eval_prompts=args.eval_prompts,
        run_seed=args.run_seed,
        dump_every=args.dump_every,
        credit_every=args.credit_every,
        steps=args.steps,
        prompts_per_step=args.prompts_per_step,
        samples_per_prompt=args.k,
        sft_steps=args.sft_steps,
        train_prompts=args.train_prompts,
        config=args.config,
        extra=list(args.override),
    )


def trainer_args(
    spec: RunSpec, run_dir: Path, use_prm: bool, seed: int, arm: Sequence[str] = ()
) -> list[str]:
    """Command-line arguments of the trainer for one run (``--config`` first if given);
    ``arm``: the arm's own overrides (the spec's passthrough ones still win)."""
    config = ["--config", spec.config] if spec.config else []
    optional = [
        f"{key}={getattr(spec, name)}"
        for name, key in OPTIONAL_KEYS.items()
        if getattr(spec, name) is not None
    ]
    if spec.eval_prompts > DEFAULT_HELDOUT:
        optional.append(f"synthetic.heldout_prompts={spec.eval_prompts}")
    return [
        *config,
        f"run.output_dir={run_dir}",
        f"run.seed={spec.run_seed}",
        f"data.seed={seed}",
        f"use_prm={str(use_prm).lower()}",
        f"run.eval_prompts={spec.eval_prompts}",
        f"run.dump_samples_every={spec.dump_every}",
        f"run.step_credit_every={spec.credit_every}",
        f"sft.checkpoint={spec.sft_checkpoint}",
        *optional,
        "run.resume=never",
        "run.save_every=0",
        "run.export_hf=false",
        "run.export_prm_hf=false",
        "run.plot=false",
        "run.tensorboard=false",
        *arm,
        *spec.extra,
    ]


def finished_with(run_dir: Path, args: list[str]) -> bool:
    """Whether ``run_dir`` finished with these trainer arguments (its benchmark marker)."""
    marker = RunLayout(run_dir).benchmark_done
    return marker.is_file() and json.loads(marker.read_text()) == args


def launch(run_dir: Path, args: list[str]) -> None:
    """Run the trainer into ``run_dir`` (log: run_dir/train.log), or reuse a run that
    finished with exactly these args. A stale run dir is replaced."""
    if finished_with(run_dir, args):
        print(f"reusing {run_dir}", file=sys.stderr, flush=True)
        return
    _clear(run_dir)
    run_dir.mkdir(parents=True)
    layout = RunLayout(run_dir)
    log_path = layout.train_log
    print(f"training {run_dir} (log {log_path})", file=sys.stderr, flush=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        cmd = [sys.executable, "-m", "prime_megatron.train", *args]
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-30:])
        raise RuntimeError(f"trainer exited with {code} for {run_dir}:\n{tail}")
    layout.benchmark_done.write_text(json.dumps(args))
    print(f"  done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def _clear(run_dir: Path) -> None:
    """Remove a previous run dir; refuse anything that does not look like one."""
    if not run_dir.exists():
        return
    if not RunLayout(run_dir).looks_like_run() and any(run_dir.iterdir()):
        raise RuntimeError(f"{run_dir} exists and is not a run dir; not overwriting it")
    shutil.rmtree(run_dir)


@lru_cache(maxsize=1)
def _char_table() -> tuple[str, ...]:
    from prime_megatron.data.tokenizer import build_char_tokenizer

    return tuple(piece_table(build_char_tokenizer()))


def load_samples(run_dir: Path) -> list[DecodedSample]:
    """Every dumped sample of a run (``samples/step_*.jsonl``), decoded."""
    table = _char_table()
    return [
        decode_sample(json.loads(line), table)
        for path in RunLayout(run_dir).sample_dumps()
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def read_config(run_dir: Path) -> dict:
    """The run's config (``config.yaml``: the validated config, exactly as it ran)."""
    return yaml.safe_load(RunLayout(run_dir).config.read_text())


def load_run(run_dir: Path, name: str | None = None) -> RunRecord:
    """A finished run's metrics, events, config and right-answer-wrong-step counts."""
    run_dir = Path(run_dir)
    steps, events = split_rows(read_metrics(run_dir))
    return RunRecord(
        name=name or run_dir.name,
        steps=steps,
        events=events,
        config=read_config(run_dir),
        raws=raws_by_step(load_samples(run_dir)),
    )
