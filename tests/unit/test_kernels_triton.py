"""Triton kernel (interpreter on CPU) == chunked torch reference == naive log-softmax.

Values and gradients, odd vocab sizes spanning several blocks with a ragged tail, bf16 inputs,
temperature, masked and fully masked rows. Shapes stay ~[8, 1000]: the interpreter is slow.
Plus an ahead-of-time compile for a CUDA target, which the interpreter does not exercise.
"""

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip(
        "needs TRITON_INTERPRET=1 (tests/conftest.py sets it) or CUDA", allow_module_level=True
    )

from prime_megatron.kernels import token_logprobs, token_logprobs_and_entropy, triton_logprob  # noqa: E402
from prime_megatron.kernels.reference import naive_token_logprobs_and_entropy as naive  # noqa: E402


def _run(fn, logits, labels, g_lp, g_ent, **kw):
    x = logits.detach().clone().requires_grad_(True)
    logp, ent = fn(x, labels, **kw)
    torch.autograd.backward([logp, ent], [g_lp, g_ent])
    return logp.detach(), ent.detach(), x.grad


def _case(vocab, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(8, vocab, generator=gen) * 4).to(dtype)
    labels = torch.randint(0, vocab, (8,), generator=gen)
    labels[[2, 5]] = -100
    labels[0], labels[1] = 0, vocab - 1  # first and last column, the block edges
    return logits, labels, torch.randn(8, generator=gen), torch.randn(8, generator=gen)


@pytest.mark.parametrize("block_v", [256, None])
@pytest.mark.parametrize("vocab", [1000, 1237])
def test_triton_equals_reference_and_naive_fp32(monkeypatch, vocab, block_v):
    if block_v:  # several online-softmax blocks, the last one partly masked
        monkeypatch.setattr(triton_logprob, "MAX_BLOCK_V", block_v)
    logits, labels, g_lp, g_ent = _case(vocab, torch.float32)
    tri = _run(token_logprobs_and_entropy, logits, labels, g_lp, g_ent, backend="triton")
    ref = _run(token_logprobs_and_entropy, logits, labels, g_lp, g_ent, backend="torch")
    want = _run(naive, logits.double(), labels, g_lp.double(), g_ent.double())
    for got, r, w in zip(tri, ref, want, strict=True):
        torch.testing.assert_close(got, r, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.double(), w, rtol=1e-5, atol=2e-6)


def test_triton_bf16_and_temperature(monkeypatch):
    monkeypatch.setattr(triton_logprob, "MAX_BLOCK_V", 512)
    logits, labels, g_lp, g_ent = _case(1237, torch.bfloat16, seed=1)
    kw = {"temperature": 0.6}
    tri = _run(token_logprobs_and_entropy, logits, labels, g_lp, g_ent, backend="triton", **kw)
    ref = _run(token_logprobs_and_entropy, logits, labels, g_lp, g_ent, backend="torch", **kw)
    want = _run(naive, logits.double(), labels, g_lp.double(), g_ent.double(), **kw)
    assert tri[2].dtype == torch.bfloat16
    for got, r, w in zip(tri[:2], ref[:2], want[:2], strict=True):
        torch.testing.assert_close(got, r, rtol=1e-5, atol=2e-6)
        torch.testing.assert_close(got.double(), w, rtol=1e-5, atol=5e-6)
    # Gradients agree up to the final rounding to bf16 (one bf16 ulp).
    torch.testing.assert_close(tri[2], ref[2], rtol=8e-3, atol=1e-5)
    torch.testing.assert_close(tri[2], w_grad := want[2].bfloat16(), rtol=8e-3, atol=1e-5)
    assert torch.equal(w_grad[[2, 5]], tri[2][[2, 5]])  # masked rows: exact zeros


def test_triton_fully_masked_rows_are_zero_without_nan():
    logits, _, g_lp, g_ent = _case(1000, torch.float32, seed=2)
    labels = torch.full((8,), -100)
    logp, ent, grad = _run(
        token_logprobs_and_entropy, logits, labels, g_lp, g_ent, backend="triton"
    )
    for t in (logp, ent, grad):
        assert torch.equal(t, torch.zeros_like(t))


def test_triton_logprob_only_matches_softmax_grad():
    logits, labels, g_lp, _ = _case(1000, torch.float32, seed=3)
    x = logits.clone().requires_grad_(True)
    logp = token_logprobs(x, labels, backend="triton")
    logp.backward(g_lp)
    valid = labels != -100
    want = naive(logits.double(), labels)[0]
    torch.testing.assert_close(logp.double(), want, rtol=1e-5, atol=2e-6)
    onehot = torch.nn.functional.one_hot(labels.clamp(min=0), 1000).double()
    want_grad = (onehot - torch.softmax(logits.double(), -1)) * (g_lp.double() * valid)[:, None]
    torch.testing.assert_close(x.grad.double(), want_grad, rtol=1e-5, atol=1e-7)


COMPILE_FOR_CUDA = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from prime_megatron.kernels import triton_logprob as tk

ptrs = {"logits_ptr": "*bf16", "labels_ptr": "*i64", "out_ptr": "*fp32", "grad_ptr": "*bf16",
        "lse_ptr": "*fp32", "ent_ptr": "*fp32", "g_lp_ptr": "*fp32", "g_ent_ptr": "*fp32"}
ints = {"row_stride": "i64", "grad_row_stride": "i64", "n_rows": "i32", "vocab": "i32",
        "inv_temp": "fp32", "WITH_ENTROPY": "constexpr", "BLOCK_V": "constexpr"}
for kernel in (tk._row_stats_kernel, tk._logits_grad_kernel):
    for with_entropy in (True, False):
        sig = {name: {**ptrs, **ints}[name] for name in kernel.arg_names}
        src = ASTSource(kernel, sig, {"WITH_ENTROPY": with_entropy, "BLOCK_V": 4096})
        assert "cubin" in triton.compile(src, target=GPUTarget("cuda", 80, 32)).asm
print("compiled")
"""


def test_kernels_compile_for_a_cuda_gpu(tmp_path):
    # The interpreter skips Triton's type checks and lowering; compile ahead of time for
    # sm_80 (no GPU needed) so a kernel that only fails to compile is caught on CPU too.
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_CACHE_DIR=str(tmp_path))
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", COMPILE_FOR_CUDA], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and "compiled" in out.stdout, out.stderr[-3000:]
