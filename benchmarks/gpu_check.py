"""GPU check: the Triton log-prob kernel and Megatron-vs-transformers parity on one CUDA device.

    python benchmarks/gpu_check.py --megatron-path DIR   # on a lent GPU (well under 8 min)
    python benchmarks/gpu_check.py --quick --device cpu  # CPU smoke test (~20 s)

Three independent parts, each under its own key of ONE JSON line on stdout, with a
``status`` of "pass", "fail", "error" (plus the error text) or "skipped" (plus the reason):

* ``kernel_equivalence``: Triton backend vs the chunked torch reference (``backend="torch"``):
  log-probs, entropies and logits gradients; fp32 and bf16; temperature 1 and 0.7; every third
  row ``ignore_index`` (exact zeros required); the label-only kernel variant too. On CUDA the
  kernels compile (``first_triton_call_s`` includes the JIT); with ``--device cpu`` they run
  under the Triton interpreter at tiny shapes (set here, before the kernel module is imported),
  which checks this script's comparisons but not compilation.
* ``kernel_benchmark``: CUDA only (skipped on CPU: interpreter timings mean nothing and there
  is no allocator peak to read; benchmarks/logprob.py measures the CPU path). Log-prob +
  entropy fwd+bwd, Triton vs naive ``log_softmax().gather()`` (``logprob_common``), T=4096,
  V=151936, bf16: best-of-N time by CUDA events after warm-up; peak extra memory from
  ``torch.cuda.max_memory_allocated`` over the step (both include the bf16 [T, V] logits
  gradient). Pass = the targets of benchmarks/logprob.py (<= 1/8 memory, <= 1x time).
* ``megatron_parity``: the project's builder (local spec unless TE is installed, TP=PP=1,
  a one-process NCCL/gloo world) loaded with a random transformers model's weights through
  ``prime_megatron.checkpoint``; fp32, TF32 off. Logits max abs diff, then a cross-entropy
  backward in both: total gradient norms and the worst per-tensor relative difference, the HF
  gradients mapped onto Megatron's names by the same HF -> Megatron rules. Real shapes at
  their real vocabularies (``prime_megatron/models/real_shapes.py``): Qwen2.5-0.5B-Instruct
  at full depth (tied), Llama-3.2-1B (tied, llama3 RoPE scaling) and Qwen2.5-Math-7B
  (untied, 152,064 tokens) at 2 layers and full width; ``--quick``: a tiny model. Skipped,
  saying so, when transformers is not importable (it is the reference).

``ok`` is true only if every part ran and passed. Exit status 1 when a part failed or errored;
a skipped part alone does not fail the run. megatron-core need not be installed: pass
``--megatron-path DIR`` (or set MEGATRON_CORE_PATH), a folder holding the unpacked wheel
(``megatron/`` and its ``.dist-info``); it is put first on sys.path. See benchmarks/README.md.
"""

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
# The GPU machine gets the source tree, not an installed package.
sys.path.insert(0, str(REPO))

from logprob_common import NAIVE, fwd_bwd, make_inputs, verdict  # noqa: E402

from prime_megatron.evidence.provenance import record  # noqa: E402  (standard library only)
from prime_megatron.passes.batch import IGNORE  # noqa: E402  (torch only: no kernels, no Megatron)

EQ_SHAPES = {False: [(256, 151936), (64, 1237)], True: [(6, 5000), (6, 1237)]}  # by --quick
EQ_CASES = (  # (logits dtype, temperature, with entropy)
    (torch.float32, 1.0, True),
    (torch.float32, 0.7, True),
    (torch.float32, 1.0, False),
    (torch.bfloat16, 1.0, True),
    (torch.bfloat16, 0.7, True),
)
# (rtol, atol). Both backends accumulate in fp32 in different orders: values and fp32 grads
# agree to fp32 rounding; bf16 grads up to their final rounding (two bf16 ulps).
VALUE_TOL = (1e-5, 1e-5)
GRAD_TOL = {torch.float32: (1e-4, 1e-6), torch.bfloat16: (8e-3, 1e-5)}

BENCH_SHAPE = {False: (4096, 151936), True: (512, 151936)}
BENCH_WARMUP, BENCH_ITERS = 3, 10

PARITY_BATCH = {False: (2, 128), True: (2, 16)}  # (batch, sequence)
LOGITS_ATOL = 1e-4  # the fp32 bar of tests/dist/scripts/model_parity.py
GRAD_NORM_RTOL = 1e-4
GRAD_TENSOR_RTOL = 1e-3


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _eq_inputs(tokens: int, vocab: int, dtype: torch.dtype, device: str, seed: int):
    logits, labels, grads = make_inputs(tokens, vocab, device, dtype, scale=4.0, seed=seed)
    labels[0], labels[1] = 0, vocab - 1  # the first and last column: block edges
    labels[2::3] = IGNORE
    return logits.detach(), labels, grads


def _outputs(backend: str, logits, labels, grads, temperature: float, with_entropy: bool):
    from prime_megatron.kernels import token_logprobs, token_logprobs_and_entropy

    x = logits.clone().requires_grad_(True)
    if with_entropy:
        logp, ent = token_logprobs_and_entropy(x, labels, temperature, IGNORE, backend=backend)
        torch.autograd.backward([logp, ent], list(grads))
        out = {"logp": logp.detach(), "entropy": ent.detach()}
    else:
        logp = token_logprobs(x, labels, temperature, IGNORE, backend=backend)
        logp.backward(grads[0])
        out = {"logp": logp.detach()}
    return {**out, "grad": x.grad}


def _compare(tri: dict, ref: dict, dtype: torch.dtype, ignored: torch.Tensor) -> dict:
    diffs, ok = {}, True
    for key, got in tri.items():
        rtol, atol = GRAD_TOL[dtype] if key == "grad" else VALUE_TOL
        got, want = got.float(), ref[key].float()
        diffs[key] = float(f"{(got - want).abs().max().item():.3e}")
        ok = ok and torch.allclose(got, want, rtol=rtol, atol=atol)
        ok = ok and bool((got[ignored] == 0).all())
    return {"pass": ok, "max_abs_diff": diffs}


def kernel_equivalence(device: str, quick: bool) -> dict:
    """Triton vs the torch reference over ``EQ_SHAPES`` x ``EQ_CASES``."""
    cases, worst, first_call_s = [], {}, None
    for tokens, vocab in EQ_SHAPES[quick]:
        for seed, (dtype, temperature, with_entropy) in enumerate(EQ_CASES):
            logits, labels, grads = _eq_inputs(tokens, vocab, dtype, device, seed)
            start = time.perf_counter()
            tri = _outputs("triton", logits, labels, grads, temperature, with_entropy)
            _sync(device)
            first_call_s = first_call_s or round(time.perf_counter() - start, 2)
            ref = _outputs("torch", logits, labels, grads, temperature, with_entropy)
            name = f"{_name(dtype)} T={tokens} V={vocab} temp={temperature}"
            case = {"case": name + (" +entropy" if with_entropy else "")}
            case.update(_compare(tri, ref, dtype, labels == IGNORE))
            cases.append(case)
            slot = worst.setdefault(_name(dtype), {})
            for key, diff in case["max_abs_diff"].items():
                slot[key] = max(slot.get(key, 0.0), diff)
    return {
        "status": "pass" if all(c["pass"] for c in cases) else "fail",
        "mode": "interpreter" if os.environ.get("TRITON_INTERPRET") == "1" else "compiled",
        "first_triton_call_s": first_call_s,
        "tolerances": {"values": VALUE_TOL, "grad": {_name(k): v for k, v in GRAD_TOL.items()}},
        "max_abs_diff": worst,
        "cases": cases,
    }


def _triton(logits: torch.Tensor, labels: torch.Tensor):
    from prime_megatron.kernels import token_logprobs_and_entropy

    return token_logprobs_and_entropy(logits, labels, backend="triton")


def _measure_cuda(fn: Callable, logits: torch.Tensor, labels: torch.Tensor, grads) -> dict:
    """Best-of-N CUDA-event time and the allocator's peak above the pre-step level."""
    for _ in range(BENCH_WARMUP):
        logits.grad = None
        fwd_bwd(fn, logits, labels, grads)
    logits.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base, times = torch.cuda.memory_allocated(), []
    for _ in range(BENCH_ITERS):
        logits.grad = None  # freed before the step, so each step starts from ``base``
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fwd_bwd(fn, logits, labels, grads)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    peak = torch.cuda.max_memory_allocated() - base
    logits.grad = None
    return {"time_s": round(min(times), 6), "peak_extra_mb": round(peak / 2**20, 1)}


def kernel_benchmark(device: str, quick: bool) -> dict:
    """Triton fwd+bwd vs naive at ``BENCH_SHAPE``, judged by benchmarks/logprob.py's targets."""
    if device != "cuda":
        return {
            "status": "skipped",
            "reason": "CUDA only: no allocator peak on CPU and interpreter timings mean "
            "nothing (benchmarks/logprob.py measures the CPU path)",
        }
    tokens, vocab = BENCH_SHAPE[quick]
    logits, labels, grads = make_inputs(tokens, vocab, device)
    runs = {name: _measure_cuda(fn, logits, labels, grads) for name, fn in
            (("naive", NAIVE), ("ours", _triton))}  # fmt: skip
    result = {
        "shape": {"T": tokens, "V": vocab},
        "dtype": "bfloat16",
        "iters": BENCH_ITERS,
        **{f"{m}_{k}": v for m, run in runs.items() for k, v in run.items()},
        "logits_grad_mb": round(tokens * vocab * 2 / 2**20, 1),
        **verdict(runs["naive"], runs["ours"]),
    }
    return {"status": "pass" if result["meets_targets"] else "fail", **result}


def _megatron_info() -> dict:
    try:
        import megatron.core
    except ImportError as e:
        raise RuntimeError(
            f"megatron-core is not importable ({e}): pass --megatron-path DIR or set "
            "MEGATRON_CORE_PATH (benchmarks/README.md)"
        ) from e
    path = Path(megatron.core.__file__).parents[1]
    return {"version": getattr(megatron.core, "__version__", None), "path": str(path)}


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten())


def _megatron_from_hf(hf, arch, parallel):
    from prime_megatron.checkpoint.convert import load_full_hf_state
    from prime_megatron.models.builder import build_gpt_model, padded_vocab_size

    padded = padded_vocab_size(arch.vocab_size, parallel.tp_size)
    model = build_gpt_model(
        arch, parallel, params_dtype=torch.float32, padded_vocab=padded, init_weights=False
    )
    # A copy: a Megatron-side in-place write must not reach the reference's weights too.
    state = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    load_full_hf_state(model, state, arch, padded, torch.float32, "random transformers model")
    return model, padded


def _megatron_pass(model, parallel, tokens: torch.Tensor, labels: torch.Tensor, vocab: int):
    from prime_megatron.models.forward import run_forward

    def step(out, mb):
        logits = out[..., :vocab].float()  # padded vocab rows dropped, as every caller does
        return _loss(logits, labels), logits.detach()

    (logits,) = run_forward(model, parallel, [{"tokens": tokens}], step, forward_only=False)
    return logits, {n: p.grad for n, p in model.named_parameters()}


def _hf_pass(hf, tokens: torch.Tensor, labels: torch.Tensor):
    logits = hf(tokens).logits.float()
    _loss(logits, labels).backward()
    return logits.detach(), {n: p.grad for n, p in hf.named_parameters()}


def _total_norm(grads) -> float:
    return torch.linalg.vector_norm(torch.stack([g.double().norm() for g in grads])).item()


def _grad_report(meg: dict, ref: dict) -> dict:
    """``ref``: HF gradients under Megatron names (mapped like weights)."""
    missing = sorted(k for k in ref if meg.get(k) is None)
    if missing:
        raise RuntimeError(f"Megatron parameters without a gradient: {missing[:6]}")
    rel = {k: ((meg[k] - g).norm() / g.norm().clamp_min(1e-30)).item() for k, g in ref.items()}
    worst = max(rel, key=rel.get)
    n_meg, n_ref = _total_norm(meg[k] for k in ref), _total_norm(ref.values())
    return {
        "grad_norm_megatron": float(f"{n_meg:.6e}"),
        "grad_norm_hf": float(f"{n_ref:.6e}"),
        "grad_norm_rel_diff": float(f"{abs(n_meg - n_ref) / n_ref:.3e}"),
        "grad_worst_tensor": worst,
        "grad_worst_rel_diff": float(f"{rel[worst]:.3e}"),
        "grad_tensors": len(ref),
    }


def _parity_models(quick: bool) -> dict[str, Callable[[], object]]:
    """name -> transformers config of each model the parity part checks."""
    from prime_megatron.models.hf_factory import hf_config
    from prime_megatron.models.real_shapes import real_config, reduced, transformers_config

    if quick:
        return {"tiny": hf_config}
    return {
        "qwen2.5-0.5b-instruct": lambda: transformers_config(real_config("qwen2.5-0.5b-instruct")),
        "llama-3.2-1b, 2 layers": lambda: transformers_config(reduced("llama-3.2-1b", 2)),
        "qwen2.5-math-7b, 2 layers": lambda: transformers_config(reduced("qwen2.5-math-7b", 2)),
    }


def _parity_run(device: str, quick: bool, parallel, name: str, config) -> dict:
    from prime_megatron.checkpoint.mapping import hf_to_megatron
    from prime_megatron.models.arch import ModelArch
    from prime_megatron.models.builder import layer_spec_kind
    from prime_megatron.models.hf_factory import random_hf_model

    arch = ModelArch.from_hf_config(config)
    hf = random_hf_model(config, seed=0).to(device)
    model, padded = _megatron_from_hf(hf, arch, parallel)
    gen = torch.Generator().manual_seed(1)
    shape = PARITY_BATCH[quick]
    tokens, labels = (torch.randint(0, arch.vocab_size, shape, generator=gen).to(device)
                      for _ in range(2))  # fmt: skip
    ref_logits, ref_grads = _hf_pass(hf, tokens, labels)
    logits, grads = _megatron_pass(model, parallel, tokens, labels, arch.vocab_size)
    report = {
        "model": f"{name} shape, random weights",
        "vocab": arch.vocab_size,
        "layer_spec": layer_spec_kind(),
        "layers": arch.num_layers,
        "batch_seq": list(shape),
        "logits_max_abs_diff": float(f"{(logits - ref_logits).abs().max().item():.3e}"),
        "logits_max_abs": round(ref_logits.abs().max().item(), 3),
        **_grad_report(grads, hf_to_megatron(ref_grads, arch, padded, layer_spec_kind())),
    }
    passed = (
        report["logits_max_abs_diff"] <= LOGITS_ATOL
        and report["grad_norm_rel_diff"] <= GRAD_NORM_RTOL
        and report["grad_worst_rel_diff"] <= GRAD_TENSOR_RTOL
    )
    return {"status": "pass" if passed else "fail", **report}


def megatron_parity(device: str, quick: bool) -> dict:
    """Megatron GPTModel vs transformers, logits and gradients, fp32 (TF32 off)."""
    try:
        import transformers
    except ImportError as e:
        return {"status": "skipped", "reason": f"transformers is not importable ({e}): "
                "it builds the reference model"}  # fmt: skip
    info = {"megatron_core": _megatron_info(), "transformers": transformers.__version__}
    from prime_megatron.distributed.init import initialize_parallel, seed_all, shutdown_distributed

    torch.set_float32_matmul_precision("highest")  # TF32 would swamp a 1e-4 bar
    parallel = initialize_parallel(1, 1)
    models = {}
    try:
        for name, make_config in _parity_models(quick).items():
            seed_all(0, parallel)
            models[name] = _parity_run(device, quick, parallel, name, make_config())
            if device == "cuda":
                torch.cuda.empty_cache()  # the next model is larger than what is cached
    finally:
        shutdown_distributed()
    passed = all(r["status"] == "pass" for r in models.values())
    return {"status": "pass" if passed else "fail", "models": models, **info,
            "thresholds": [LOGITS_ATOL, GRAD_NORM_RTOL, GRAD_TENSOR_RTOL]}  # fmt: skip


PARTS: dict[str, Callable[[str, bool], dict]] = {
    "kernel_equivalence": kernel_equivalence,
    "kernel_benchmark": kernel_benchmark,
    "megatron_parity": megatron_parity,
}


def _guarded(part: Callable[[str, bool], dict], device: str, quick: bool) -> dict:
    """Run one part; any exception becomes that part's "error", the other parts still run."""
    start = time.perf_counter()
    try:
        # Libraries print to stdout; the one JSON line must stay alone there.
        with contextlib.redirect_stdout(sys.stderr):
            result = part(device, quick)
    except Exception as e:
        traceback.print_exc()  # the full trace for the operator, on stderr
        frames = traceback.extract_tb(e.__traceback__)[-3:]
        result = {
            "status": "error",
            "error": f"{type(e).__name__}: {e}"[:2000],
            "where": [f"{Path(f.filename).name}:{f.lineno}" for f in frames],
        }
    if device == "cuda":
        torch.cuda.empty_cache()
    return {**result, "seconds": round(time.perf_counter() - start, 2)}


def _select_device(requested: str | None) -> str:
    device = requested or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        # Before anything touches CUDA: Megatron and transformers then take their CPU paths
        # even on a GPU host; the kernel module reads TRITON_INTERPRET when it is imported.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["TRITON_INTERPRET"] = "1"
    elif not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch.cuda.is_available() is False")
    else:
        os.environ.pop("TRITON_INTERPRET", None)  # compiling the kernels is part of the check
    return device


def _add_import_paths(arg: str | None) -> list[str]:
    """Put the --megatron-path / MEGATRON_CORE_PATH folders first on sys.path."""
    raw = arg if arg is not None else os.environ.get("MEGATRON_CORE_PATH", "")
    paths = [str(Path(p).resolve()) for p in raw.split(os.pathsep) if p]
    for path in paths:
        if not Path(path).is_dir():
            raise SystemExit(f"megatron path {path!r} is not a directory")
    sys.path[:0] = paths
    return paths


def _environment(device: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__}
    env["cuda"] = torch.version.cuda
    env["gpu"] = torch.cuda.get_device_name() if device == "cuda" else None
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    return env


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (CPU smoke test)")
    parser.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda if available")
    parser.add_argument("--megatron-path", help="folder(s) with an unpacked megatron-core wheel")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    return parser.parse_args()


def main() -> int:
    args = _parse_args()
    wanted = args.parts.split(",")
    if unknown := sorted(set(wanted) - set(PARTS)):
        raise SystemExit(f"--parts: unknown {unknown}; choose from {list(PARTS)}")
    device = _select_device(args.device)
    start = time.perf_counter()
    report = {"benchmark": "gpu_check", **record(config=args)}
    report.update(device=device, quick=args.quick)
    report["extra_paths"] = _add_import_paths(args.megatron_path)
    report["env"] = _environment(device)
    for name, part in PARTS.items():
        report[name] = (
            _guarded(part, device, args.quick)
            if name in wanted
            else {"status": "skipped", "reason": "not in --parts"}
        )
        # Each part also on stderr as it ends: a run killed by a time limit keeps what it had.
        print(f"[gpu_check] {name}: {json.dumps(report[name])}", file=sys.stderr, flush=True)
    statuses = [report[name]["status"] for name in PARTS]
    report["ok"] = all(s == "pass" for s in statuses)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report), flush=True)
    return 1 if {"fail", "error"} & set(statuses) else 0


if __name__ == "__main__":
    sys.exit(main())
