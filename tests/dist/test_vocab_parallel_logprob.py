"""Vocab-parallel log-prob / entropy kernels at TP=2 (torchrun, gloo) equal TP=1."""

from pathlib import Path

from tests.torchrun import run_torchrun

SCRIPT = Path(__file__).parent / "scripts" / "vocab_parallel_logprob.py"


def test_vocab_parallel_tp2_equals_tp1():
    out = run_torchrun(SCRIPT, 2, "torch", "triton", timeout=120)
    for rank in (0, 1):
        for backend in ("torch", "triton"):
            assert out.count(f"rank {rank}: {backend} ") == 2, out[-3000:]
