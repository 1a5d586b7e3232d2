"""Benchmark: PRIME steps at a real model's shape on this machine, phase by phase.

    python benchmarks/real_shape_step.py --out runs/bench/real_step           # 2 steps
    python benchmarks/real_shape_step.py --out DIR --override batch.max_tokens_per_micro_batch=2048

The model: Qwen2.5-0.5B-Instruct's config cut to ``--layers`` layers at its full width and
151,936-token vocabulary (``models/real_shapes.py``), random fp32 weights, with the
Qwen2.5-style byte-level BPE tokenizer and ChatML (``data/bpe.py``); the data: the
Eurus-2-RL-Data-format math rows of ``tests/real_shape_inputs.py``. The job: the paper's
recipe (``configs/qwen25_math_7b_prime.yaml``) at TP=1 with ``--prompts`` x
``--samples`` rollouts of ``--response-len`` tokens, every group kept (random weights
solve nothing), the weight sync verified every step. One JSON line: the mean seconds of
every phase over the steps after the first (which pays vLLM's warm-up), the step time,
the share no phase accounts for, response tokens per second, the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prime_megatron.evidence.provenance import record  # noqa: E402
from prime_megatron.run_layout import RunLayout  # noqa: E402

MODEL = "qwen2.5-0.5b-instruct"


def prepare(out: Path, layers: int) -> tuple[Path, Path]:
    """The HF dir and the parquet (written once, reused)."""
    import torch

    from prime_megatron.data.bpe import build_bpe_tokenizer
    from prime_megatron.models.hf_factory import save_random_hf_model
    from prime_megatron.models.real_shapes import reduced, transformers_config
    from tests.real_shape_inputs import write_eurus_parquet

    model, data = out / "model", out / "math.parquet"
    if not (model / "config.json").is_file():
        config = transformers_config(reduced(MODEL, layers))
        save_random_hf_model(model, config, 0, torch.float32, build_bpe_tokenizer("qwen2.5"))
    if not data.is_file():
        write_eurus_parquet(data)
    return model, data


def job(args: argparse.Namespace, model: Path, data: Path) -> list[str]:
    return [
        "--config", str(REPO / "configs/qwen25_math_7b_prime.yaml"),
        f"run.output_dir={args.out / 'run'}", "run.resume=never", f"run.steps={args.steps}",
        "run.eval_prompts=0", "run.verify_sync_every=1", "run.save_every=0",
        "run.export_hf=false", "run.export_prm_hf=false", "run.plot=false",
        "run.tensorboard=false", "model.source=hf", f"model.path={model}",
        "model.dtype=float32", "rollout.dtype=float32", "parallel.tensor_parallel=1",
        "rollout.tensor_parallel_size=1", "rollout.sleep_between_rollouts=false",
        "rollout.gpu_memory_utilization=0.5", f"rollout.max_response_len={args.response_len}",
        f"batch.prompts_per_step={args.prompts}", f"batch.samples_per_prompt={args.samples}",
        "batch.mini_batches_per_step=1", "batch.prm_mini_batches_per_step=1",
        "algo.accuracy_low=0.0", "algo.accuracy_high=1.0", "rewards.num_workers=1",
        f"data.train_files=[{data}]", "data.val_files=[]", *args.override,
    ]  # fmt: skip


def summarise(metrics_file: Path) -> dict:
    steps = [r for r in map(json.loads, metrics_file.read_text().splitlines())
             if "step" in r and "event" not in r][1:]  # fmt: skip
    if not steps:
        raise SystemExit("need --steps >= 2: the first step pays vLLM's warm-up")
    keys = sorted(k for k in steps[0] if k.startswith("time/") and k != "time/tokens_per_s")
    mean = {k.removeprefix("time/"): sum(r[k] for r in steps) / len(steps) for k in keys}
    phases = sum(v for k, v in mean.items() if k != "step")
    tokens = sum(r["train/response_len"] * r["train/samples"] for r in steps) / len(steps)
    return {
        "steps_measured": len(steps),
        "seconds": {k: round(v, 2) for k, v in mean.items()},
        "unaccounted_share": round(1 - phases / mean["step"], 3),
        "response_tokens_per_s": round(tokens / mean["step"], 2),
        "mismatch_abs_mean": steps[-1].get("mismatch/rollout_vs_trainer_abs_mean"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench/real_step"))
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--response-len", type=int, default=256)
    p.add_argument("--override", nargs="*", default=[], help="section.field=value ...")
    args = p.parse_args()
    model, data = prepare(args.out, args.layers)
    overrides = job(args, model, data)
    cmd = [sys.executable, "-m", "prime_megatron.train", *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    trainer = yaml.safe_load(RunLayout(args.out / "run").config.read_text())
    provenance = record(config={"args": args, "trainer": trainer}, overrides=overrides)
    out = {"benchmark": "real_shape_step", **provenance, "model": f"{MODEL}, {args.layers} layers",
           **summarise(args.out / "run" / "metrics.jsonl"),
           "peak_rss_gib": round(peak_gib, 2)}  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
