"""Benchmark: a ragged batch of long answers through forward+backward, cut three ways.

    python benchmarks/micro_batching.py                 # answers of 100-3,000 tokens
    python benchmarks/micro_batching.py --quick         # answers of 50-800 tokens

Rows: prompts of 50-200 tokens, answers drawn uniformly between the bounds, random ids of a
32k vocabulary, a 2-layer model (hidden 256) built from a random HF model at
``hf_factory.PRESETS["small"]``'s width. Three sides, timed alternately after one warm-up
each, median of ``--repeats``: ``rows`` (today's layout: ``--rows`` rows per micro-batch,
sorted by length and trimmed), ``budget`` (``--max-tokens`` padded tokens per
micro-batch) and ``packed`` (rows concatenated into sequences of ``--max-tokens``). Before
timing, the sides' log-probs must agree. Tokens/s counts the real tokens (prompt +
answer); the padding share is the computed positions that are padding. One JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from prime_megatron.distributed.init import initialize_parallel, seed_all, shutdown_distributed
from prime_megatron.evidence.provenance import record
from prime_megatron.passes.batch import Group, SampleBatch
from prime_megatron.passes.micro import (
    MicroBatching,
    pack_bins,
    plan_micro_batches,
)
from prime_megatron.passes.run import run_pass

TARGET = 1.5  # best of budget / packed over rows, tokens/s


def ragged_batch(n: int, answers: tuple[int, int], vocab: int, seed: int = 0) -> SampleBatch:
    gen = torch.Generator().manual_seed(seed)

    def ids(lo: int, hi: int) -> list[int]:
        k = int(torch.randint(lo, hi + 1, (), generator=gen))
        return torch.randint(4, vocab, (k,), generator=gen).tolist()

    groups = []
    for i in range(n // 4):
        responses = [ids(*answers) for _ in range(4)]
        logps = [[0.0] * len(r) for r in responses]
        groups.append(Group(ids(50, 200), responses, logps, [False] * 4, [0.0] * 4, i, 0))
    return SampleBatch.from_groups(groups, pad_id=0)


def build_model(parallel, vocab: int):
    from prime_megatron.checkpoint.convert import load_full_hf_state
    from prime_megatron.models.arch import ModelArch
    from prime_megatron.models.builder import build_gpt_model, padded_vocab_size
    from prime_megatron.models.hf_factory import PRESETS, hf_config, random_hf_model

    shape = {**PRESETS["small"], "num_hidden_layers": 2, "vocab_size": vocab,
             "max_position_embeddings": 4096}  # fmt: skip
    config = hf_config(**shape)
    arch = ModelArch.from_hf_config(config.to_dict())
    padded = padded_vocab_size(arch.vocab_size, parallel.tp_size)
    model = build_gpt_model(arch, parallel, padded_vocab=padded, init_weights=False)
    state = random_hf_model(config, seed=0).state_dict()
    load_full_hf_state(model, state, arch, padded, torch.float32, "random transformers model")
    return model


def computed_positions(batch: SampleBatch, how: MicroBatching) -> int:
    """Token positions the forward computes under ``how`` (padding included)."""
    lengths, width = batch.lengths(), batch.tokens.shape[1]
    if how.pack:
        return int(sum(int(lengths[b].sum()) for b in pack_bins(lengths, how.max_tokens)))
    plan = plan_micro_batches(lengths, how, width)
    return sum(len(rows) * w for rows, w in plan)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--rows", type=int, default=4, help="rows per micro-batch, today's path")
    p.add_argument("--max-tokens", type=int, default=0, help="default: the longest row")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    answers = (50, 800) if args.quick else (100, 3000)
    vocab = 32000
    parallel = initialize_parallel(1, 1)
    try:
        seed_all(0, parallel)
        model = build_model(parallel, vocab)
        batch = ragged_batch(args.samples, answers, vocab)
        budget = args.max_tokens or int(batch.lengths().max())
        sides = {"rows": MicroBatching(args.rows),
                 "budget": MicroBatching(args.rows, budget),
                 "packed": MicroBatching(args.rows, budget, pack=True)}  # fmt: skip
        result = run(model, parallel, batch, sides, vocab, args.repeats)
    finally:
        shutdown_distributed()
    real = int(batch.lengths().sum())
    batch_config = {"samples": args.samples, "answers": answers, "vocab": vocab, "layers": 2,
                    "hidden": 256, "rows": args.rows, "max_tokens": budget}  # fmt: skip
    out = {"benchmark": "micro_batching", **record(config={"args": args, "batch": batch_config}),
           "threads": torch.get_num_threads(),
           "real_tokens": real, "max_logp_diff": result.pop("max_logp_diff")}  # fmt: skip
    for name, how in sides.items():
        secs = result[name]
        computed = computed_positions(batch, how)
        out[name] = {"s": round(secs, 3), "tok_s": round(real / secs, 1),
                     "padding_share": round(1 - real / computed, 3)}  # fmt: skip
    best = max(out["budget"]["tok_s"], out["packed"]["tok_s"])
    out["speedup"] = round(best / out["rows"]["tok_s"], 3)
    out["target"], out["meets_target"] = TARGET, out["speedup"] >= TARGET
    print(json.dumps(out))


def run(model, parallel, batch: SampleBatch, sides: dict, vocab: int, repeats: int) -> dict:
    total = float(batch.mask.sum())

    def loss_fn(logp, _ent, mb):
        return -(logp * mb.mask).sum() / total, {}

    def step(how):
        model.zero_grad(set_to_none=True)
        return run_pass(model, parallel, batch, how, loss_fn=loss_fn, vocab_size=vocab).logp

    first = {name: step(how) for name, how in sides.items()}  # warm-up and parity
    mask = batch.mask.bool()
    diff = max((first[n] - first["rows"])[mask].abs().max().item() for n in sides)
    if diff > 1e-4:
        raise SystemExit(f"the sides' log-probs differ by {diff:.2e}: no timing")
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, how in sides.items():
            began = time.perf_counter()
            step(how)
            times[name].append(time.perf_counter() - began)
    return {"max_logp_diff": float(f"{diff:.2e}"),
            **{n: statistics.median(t) for n, t in times.items()}}  # fmt: skip


if __name__ == "__main__":
    main()
