"""Chunked torch reference: hand-worked numbers, equality with the naive log-softmax, gradcheck."""

import math

import pytest
import torch

from prime_megatron.kernels import reference, token_logprobs, token_logprobs_and_entropy
from prime_megatron.kernels.reference import naive_token_logprobs_and_entropy as naive


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Force several chunks (and a ragged last one) even at test sizes."""
    monkeypatch.setattr(reference, "CHUNK_ELEMS", 3000)


def _value_and_grads(fn, logits, labels, g_lp, g_ent, **kw):
    x = logits.detach().clone().requires_grad_(True)
    logp, ent = fn(x, labels, **kw)
    torch.autograd.backward([logp, ent], [g_lp, g_ent])
    return logp.detach(), ent.detach(), x.grad


def test_hand_worked_row():
    # p = [1/6, 2/6, 3/6]; label 2: log p = ln(1/2); H = ln6/6 + ln3/3 + ln2/2.
    logits = torch.tensor([[0.0, math.log(2), math.log(3)]], requires_grad=True)
    logp, ent = token_logprobs_and_entropy(logits, torch.tensor([2]), backend="torch")
    assert logp.item() == pytest.approx(-0.6931472, abs=1e-6)
    assert ent.item() == pytest.approx(1.0114043, abs=1e-6)
    # d log p / dx = onehot - p;  dH/dx_j = -p_j (log p_j + H).
    (grad_lp,) = torch.autograd.grad(logp.sum(), logits, retain_graph=True)
    torch.testing.assert_close(grad_lp[0], torch.tensor([-1 / 6, -1 / 3, 1 / 2]))
    (grad_ent,) = torch.autograd.grad(ent.sum(), logits)
    torch.testing.assert_close(grad_ent[0], torch.tensor([0.130059, 0.029069, -0.159128]))


def test_temperature_divides_logits_first():
    # logits / 2 -> p proportional to [1, sqrt 2, sqrt 3] = [0.241181, 0.341081, 0.417738].
    logits = torch.tensor([[0.0, math.log(2), math.log(3)]])
    logp, ent = token_logprobs_and_entropy(logits, torch.tensor([0]), temperature=2.0)
    assert logp.item() == pytest.approx(math.log(0.241181), abs=1e-5)
    assert ent.item() == pytest.approx(1.0745321, abs=1e-6)


@pytest.mark.parametrize("vocab", [1000, 1237])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_matches_naive_fp32(tiny_chunks, vocab, temperature):
    gen = torch.Generator().manual_seed(vocab)
    logits = torch.randn(2, 5, vocab, generator=gen) * 4
    labels = torch.randint(0, vocab, (2, 5), generator=gen)
    labels[1, 3] = -100
    g_lp, g_ent = torch.randn(2, 5, generator=gen), torch.randn(2, 5, generator=gen)
    ours = _value_and_grads(
        token_logprobs_and_entropy, logits, labels, g_lp, g_ent, temperature=temperature
    )
    want = _value_and_grads(
        naive, logits.double(), labels, g_lp.double(), g_ent.double(), temperature=temperature
    )
    for got, exp in zip(ours, want, strict=True):
        torch.testing.assert_close(got.double(), exp, rtol=1e-5, atol=2e-6)


def test_bf16_inputs_accumulate_in_fp32(tiny_chunks):
    gen = torch.Generator().manual_seed(1)
    logits = (torch.randn(6, 1237, generator=gen) * 4).bfloat16()
    labels = torch.randint(0, 1237, (6,), generator=gen)
    g = torch.ones(6)
    logp, ent, grad = _value_and_grads(token_logprobs_and_entropy, logits, labels, g, g)
    assert logp.dtype == torch.float32 and grad.dtype == torch.bfloat16
    want_lp, want_ent, want_grad = _value_and_grads(
        naive, logits.double(), labels, g.double(), g.double()
    )
    torch.testing.assert_close(logp.double(), want_lp, rtol=1e-6, atol=2e-6)
    torch.testing.assert_close(ent.double(), want_ent, rtol=1e-6, atol=2e-6)
    # The only error left is the final rounding of the gradient to bf16.
    torch.testing.assert_close(grad, want_grad.bfloat16(), rtol=1e-2, atol=1e-5)


def test_masked_rows_give_zero_and_zero_grad():
    logits = torch.randn(4, 50) * 3
    labels = torch.tensor([-100, 7, -100, -100])
    g = torch.full((4,), 5.0)
    logp, ent, grad = _value_and_grads(token_logprobs_and_entropy, logits, labels, g, g)
    assert torch.equal(logp[[0, 2, 3]], torch.zeros(3)) and torch.equal(
        ent[[0, 2, 3]], torch.zeros(3)
    )
    assert torch.equal(grad[[0, 2, 3]], torch.zeros(3, 50))
    assert grad[1].abs().sum() > 0
    all_masked = _value_and_grads(token_logprobs_and_entropy, logits, torch.full((4,), -100), g, g)
    assert all(torch.equal(t, torch.zeros_like(t)) for t in all_masked)


def test_unused_entropy_and_logprob_only_variant():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(5, 77, generator=gen, requires_grad=True)
    labels = torch.randint(0, 77, (5,), generator=gen)
    logp, _ = token_logprobs_and_entropy(logits, labels)
    (grad_full,) = torch.autograd.grad(logp.sum(), logits)
    only = token_logprobs(logits, labels)
    (grad_only,) = torch.autograd.grad(only.sum(), logits)
    torch.testing.assert_close(only, logp)
    torch.testing.assert_close(grad_only, grad_full)
    onehot = torch.nn.functional.one_hot(labels, 77).float()
    torch.testing.assert_close(grad_full, onehot - torch.softmax(logits.detach(), -1))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_fp32_logits_are_not_modified(tiny_chunks, temperature):
    logits = torch.randn(7, 600, requires_grad=True)
    before = logits.detach().clone()
    labels = torch.randint(0, 600, (7,))
    logp, ent = token_logprobs_and_entropy(logits, labels, temperature=temperature)
    (logp.sum() + ent.sum()).backward()
    assert torch.equal(logits.detach(), before)


@pytest.mark.parametrize("temperature", [1.0, 1.7])
def test_gradcheck_float64(tiny_chunks, temperature):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(9, 700, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 700, (9,), generator=gen)
    labels[4] = -100

    def both(x):
        return token_logprobs_and_entropy(x, labels, temperature=temperature)

    assert torch.autograd.gradcheck(both, (logits,), eps=1e-6, atol=1e-7, fast_mode=True)
    lp_only = lambda x: token_logprobs(x, labels, temperature=temperature)  # noqa: E731
    assert torch.autograd.gradcheck(lp_only, (logits,), eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"ignore_index": 0}, "ignore_index"),
        ({"backend": "cuda"}, "backend"),
        ({"labels": torch.zeros(3, dtype=torch.long)}, "labels shape"),
    ],
)
def test_bad_arguments_fail_fast(kwargs, match):
    args = {"logits": torch.randn(2, 5), "labels": torch.zeros(2, dtype=torch.long), **kwargs}
    with pytest.raises(ValueError, match=match):
        token_logprobs_and_entropy(**args)
