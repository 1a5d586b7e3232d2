"""Vocab-parallel token log-prob + entropy at TP = world size equals the TP=1 result.

Every rank builds the same full logits, computes the TP=1 values and grads locally, then the
sharded version over an explicit process group, and checks values and its gradient shard.
Usage: torchrun --nproc_per_node=2 vocab_parallel_logprob.py BACKEND [BACKEND ...]
"""

import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module import

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from prime_megatron.kernels import token_logprobs_and_entropy  # noqa: E402

VOCAB = 1000


def run(logits, labels, grads, **kw):
    x = logits.detach().clone().requires_grad_(True)
    logp, ent = token_logprobs_and_entropy(x, labels, **kw)
    torch.autograd.backward([logp, ent], list(grads))
    return logp.detach(), ent.detach(), x.grad


def inputs(dtype):
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 5, VOCAB, generator=gen) * 4).to(dtype)
    labels = torch.randint(0, VOCAB, (2, 5), generator=gen)
    # Labels at both shard edges, the vocab ends, and masked rows.
    labels[0, :4] = torch.tensor([0, VOCAB // 2 - 1, VOCAB // 2, VOCAB - 1])
    labels[1, 1] = labels[1, 4] = -100
    return logits, labels, (torch.randn(2, 5, generator=gen), torch.randn(2, 5, generator=gen))


def check(backend, dtype, temperature, group):
    rank, tp = dist.get_rank(group), dist.get_world_size(group)
    logits, labels, grads = inputs(dtype)
    kw = {"temperature": temperature, "backend": backend}
    ref = run(logits, labels, grads, **kw)
    shard = VOCAB // tp
    local = logits[..., rank * shard : (rank + 1) * shard]
    got = run(local, labels, grads, group=group, **kw)
    tol = {"rtol": 1e-5, "atol": 2e-6}
    torch.testing.assert_close(got[0], ref[0], **tol)
    torch.testing.assert_close(got[1], ref[1], **tol)
    grad_tol = tol if dtype == torch.float32 else {"rtol": 8e-3, "atol": 1e-5}
    torch.testing.assert_close(got[2], ref[2][..., rank * shard : (rank + 1) * shard], **grad_tol)
    assert torch.equal(got[2][1, 1], torch.zeros(shard)), "masked row must get zero grad"
    print(f"rank {rank}: {backend} {dtype} T={temperature} OK", flush=True)


def main():
    dist.init_process_group("gloo")
    group = dist.new_group(list(range(dist.get_world_size())))  # explicit, not the default
    for backend in sys.argv[1:]:
        check(backend, torch.float32, 1.0, group)
        check(backend, torch.bfloat16, 0.7, group)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
