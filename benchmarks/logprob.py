"""Benchmark: token log-prob + entropy, forward + backward, ours vs naive full log-softmax (CPU).

    python benchmarks/logprob.py          # T=4096,V=151936 and T=16384,V=32000; the naive
                                          # runs peak at ~13 GB: needs a quiet 24 GB machine
    python benchmarks/logprob.py --small  # quick run, same code path

Naive (``reference.naive_token_logprobs_and_entropy``): ``log_softmax(logits.float())``,
``gather`` of the label, entropy ``-(exp(lp) * lp).sum(-1)``, autograd backward.
Ours: ``token_logprobs_and_entropy`` (the chunked torch reference, the CPU run-time path).
Both get the same bf16 logits (a leaf that requires grad) and the same incoming gradients.

Memory: each (method, shape) runs in a fresh subprocess so allocator state cannot leak
between measurements. Peak extra memory = kernel-reported peak RSS (VmHWM, reset through
/proc/self/clear_refs right before the step) minus RSS at that moment, i.e. everything the
step allocates, including the [T, V] logits gradient both methods must return. Time = best of
``--repeats`` steps after a warm-up on a small slice. Prints one JSON line.
"""

import argparse
import json
import subprocess
import sys
import time

import psutil
import torch
from logprob_common import NAIVE, fwd_bwd, make_inputs, verdict

from prime_megatron.evidence.provenance import record
from prime_megatron.kernels import token_logprobs_and_entropy

FULL_SHAPES = [(4096, 151936), (16384, 32000)]
SMALL_SHAPES = [(256, 151936), (1024, 32000)]
# The naive step peaks at ~4.8 fp32 [T, V] tensors (measured) plus the bf16 logits.
NAIVE_FP32_COPIES = 5.5


def _ours(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return token_logprobs_and_entropy(logits, labels, backend="torch")


METHODS = {"naive": NAIVE, "ours": _ours}


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def _reset_peak_rss() -> int:
    """Make VmHWM equal the current RSS (Linux >= 4.0) and return that RSS in kB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _rss_kb("VmRSS")


def worker(method: str, tokens: int, vocab: int, repeats: int) -> dict:
    """Measure one method at one shape in this (fresh) process."""
    logits, labels, grads = make_inputs(tokens, vocab)
    fn = METHODS[method]
    warm = slice(0, max(1, tokens // 64))
    fwd_bwd(fn, logits[warm].detach().requires_grad_(), labels[warm], (g[warm] for g in grads))
    peak_kb, times = 0, []
    for _ in range(repeats):
        logits.grad = None
        base_kb = _reset_peak_rss()
        start = time.perf_counter()
        fwd_bwd(fn, logits, labels, grads)
        times.append(time.perf_counter() - start)
        peak_kb = max(peak_kb, _rss_kb("VmHWM") - base_kb)
    return {"time_s": round(min(times), 3), "peak_extra_mb": round(peak_kb / 1024, 1)}


def _require_free_memory(tokens: int, vocab: int) -> None:
    """Refuse to start rather than push a shared machine into the OOM killer."""
    need = NAIVE_FP32_COPIES * tokens * vocab * 4
    free = psutil.virtual_memory().available
    if free < need:
        raise SystemExit(
            f"T={tokens} V={vocab} needs ~{need / 2**30:.1f} GiB free, have "
            f"{free / 2**30:.1f} GiB; try --small"
        )


def _spawn(method: str, tokens: int, vocab: int, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, str(tokens), str(vocab)]
    out = subprocess.run([*cmd, f"--repeats={repeats}"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{method} T={tokens} V={vocab} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="quick run at small shapes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "T", "V"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, tokens, vocab = args.worker
        print(json.dumps(worker(method, int(tokens), int(vocab), args.repeats)))
        return
    results = {"benchmark": "logprob_entropy_fwd_bwd", **record(config=args), "device": "cpu",
               "dtype": "bfloat16"}  # fmt: skip
    results["threads"] = torch.get_num_threads()
    for tokens, vocab in SMALL_SHAPES if args.small else FULL_SHAPES:
        _require_free_memory(tokens, vocab)
        runs = {m: _spawn(m, tokens, vocab, args.repeats) for m in METHODS}
        results[f"T{tokens}_V{vocab}"] = {
            **{f"{m}_{k}": v for m, run in runs.items() for k, v in run.items()},
            "logits_grad_mb": round(tokens * vocab * 2 / 2**20, 1),  # bf16 [T, V], in both
            **verdict(runs["naive"], runs["ours"]),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
