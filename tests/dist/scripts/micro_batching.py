"""torchrun script: one model's log-probs, entropy and gradients over a ragged batch cut by
rows, by a token budget and packed; prints the largest differences against the rows path,
and those of the last position's logits computed alone (greedy decoding) against all.

args: CKPT TP
"""

import json
import sys
from pathlib import Path


def ragged_batch(vocab: int):
    """Answers from 1 to 60 tokens after 3-12 token prompts: most rows much shorter than the
    longest, as with long-answer budgets."""
    import random

    from prime_megatron.passes.batch import Group, SampleBatch

    rng = random.Random(0)
    groups = []
    for p in range(5):
        prompt = [rng.randrange(4, vocab) for _ in range(rng.randint(3, 12))]
        lengths = [rng.choice([1, 2, 5, 9, 17, 33, 60]) for _ in range(4)]
        responses = [[rng.randrange(4, vocab) for _ in range(n)] for n in lengths]
        logps = [[0.0] * n for n in lengths]
        groups.append(Group(prompt, responses, logps, [False] * 4, [1.0, 0.0, 1.0, 0.0], p, 0))
    return SampleBatch.from_groups(groups, pad_id=0)


def main() -> None:
    import torch
    import torch.distributed as dist

    from prime_megatron.checkpoint.convert import load_megatron_model
    from prime_megatron.distributed.init import initialize_parallel, seed_all
    from prime_megatron.passes.micro import MicroBatching
    from prime_megatron.passes.run import run_pass

    ckpt, tp = sys.argv[1], int(sys.argv[2])
    parallel = initialize_parallel(tp, 1)
    seed_all(0, parallel)
    model, meta = load_megatron_model(Path(ckpt), parallel)[:2]
    vocab = meta.hf_config["vocab_size"]
    batch = ragged_batch(vocab)
    total = float(batch.mask.sum())

    def loss_fn(logp, ent, mb):
        return -((logp + 0.1 * ent) * mb.mask).sum() / total, {"tokens": float(mb.mask.sum())}

    def run(how):
        model.zero_grad(set_to_none=True)
        out = run_pass(model, parallel, batch, how, with_entropy=True, loss_fn=loss_fn,
                       vocab_size=vocab)  # fmt: skip
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return out, grads

    base, base_grads = run(MicroBatching(rows=3))
    report = {}
    ways = {"budget": MicroBatching(rows=3, max_tokens=96),
            "packed": MicroBatching(rows=3, max_tokens=96, pack=True)}  # fmt: skip
    for name, how in ways.items():
        out, grads = run(how)
        mask = batch.mask.bool()
        report[name] = {
            "logp": (out.logp - base.logp)[mask].abs().max().item(),
            "entropy": (out.entropy - base.entropy)[mask].abs().max().item(),
            "off_mask_zero": bool((out.logp[~mask] == 0).all()),
            "grad_rel": ((grads - base_grads).norm() / base_grads.norm()).item(),
            "tokens": out.metrics["tokens"],
        }
    report["tokens"] = total
    report["last_position"] = _last_position_diff(model, parallel, batch.tokens[:4], vocab)
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps(report), flush=True)


def _last_position_diff(model, parallel, tokens, vocab: int) -> float:
    from prime_megatron.models.forward import full_logits, last_position_logits

    every = full_logits(model, parallel, tokens, vocab)
    with last_position_logits(model):
        last = full_logits(model, parallel, tokens, vocab)
    assert last.shape[1] == 1, last.shape
    return (last[:, 0] - every[:, -1]).abs().max().item()


if __name__ == "__main__":
    main()
    from prime_megatron.distributed.init import shutdown_distributed

    shutdown_distributed()
