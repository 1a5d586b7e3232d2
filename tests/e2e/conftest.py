"""Short end-to-end runs of ``prime_megatron.train`` on the tiny synthetic job."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.torchrun import free_port

# A few-second job: small SFT, small batches, short responses, one PRM step per RL step;
# the clean, short mixed +/- chains (the machinery is what is tested here, not the
# planted-error testbed).
TINY = [
    "sft.steps=60", "sft.batch_size=32",
    "synthetic.train_prompts=600", "synthetic.heldout_prompts=40", "run.eval_prompts=24",
    "synthetic.p_two_digit=0.3", "synthetic.sft_error_rate=0.0",
    "synthetic.operators=+-", "synthetic.min_ops=2", "synthetic.max_ops=4",
    "batch.prm_mini_batches_per_step=1", "algo.prm_epochs=1",
    "batch.prompts_per_step=6", "batch.micro_batch_size=8",
    "rollout.max_response_len=48", "algo.accuracy_low=0.0", "algo.accuracy_high=1.0",
    "run.tensorboard=false", "run.plot=false", "rewards.num_workers=1",
]  # fmt: skip


def launch(run_dir: Path, nproc: int, *overrides: str, env: dict | None = None, nnodes: int = 1,
           node_rank: int = 0, port: int | None = None, wait: bool = True):  # fmt: skip
    """Start the trainer (torchrun when nproc > 1 or nnodes > 1); returns the process."""
    args = ["-m", "prime_megatron.train", f"run.output_dir={run_dir}", *TINY, *overrides]
    if nproc == 1 and nnodes == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               f"--nnodes={nnodes}", f"--node_rank={node_rank}", "--master_addr=127.0.0.1",
               f"--master_port={port or free_port()}", *args]  # fmt: skip
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env
    )
    if wait:
        out, _ = proc.communicate(timeout=900)
        proc.output = out
    return proc


def run_ok(run_dir: Path, nproc: int, *overrides: str, **kw) -> str:
    proc = launch(run_dir, nproc, *overrides, **kw)
    assert proc.returncode == 0, proc.output[-8000:]
    return proc.output


def step_records(run_dir: Path) -> list[dict]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "step" in r and "event" not in r]


@pytest.fixture(scope="session")
def sft_ckpt(tmp_path_factory) -> Path:
    """One SFT checkpoint shared by every e2e run (reused through its recipe file)."""
    root = tmp_path_factory.mktemp("sft")
    run_ok(
        root / "warmup", 1, f"sft.checkpoint={root / 'ckpt'}", "run.steps=1", "run.eval_prompts=0"
    )
    return root / "ckpt"
