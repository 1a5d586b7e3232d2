"""torchrun script: Megatron (TP x PP) -> vLLM (rollout TP) weight sync, end to end.

Checks, in order: rollouts refuse to run before the first sync (dummy weights); a sync with
a bucket smaller than the largest tensor; vLLM greedy == Megatron greedy and log-probs
close; an optimizer step changes the weights, sync again, outputs change and match again;
seeded sampling is reproducible and samples come back grouped; many syncs do not grow RSS.

args: CKPT_DIR TP PP ROLLOUT_TP
"""

import json
import sys
from pathlib import Path

import torch

PROMPT_LENS = (3, 7, 12, 5, 9)  # 5 prompts: uneven split over 2 or 4 replicas
NEW_TOKENS = 12
K = 3
BUCKET_BYTES = 48 * 1024  # smaller than the embedding, QKV and MLP tensors
N_SYNCS = 12
RSS_SLACK = 24 * 2**20


def log(parallel, *msg) -> None:
    import torch.distributed as dist

    if dist.get_rank() == 0:
        print(*msg, flush=True)


def optimizer_step(model, parallel, vocab: int) -> None:
    """One Adam step on a cross-entropy loss, through Megatron's schedule (all stages)."""
    import torch.distributed as dist
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import vocab_parallel_cross_entropy

    from prime_megatron.models.forward import run_forward

    gen = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, vocab, (2, 16), generator=gen)
    labels = torch.randint(0, vocab, (2, 16), generator=gen)

    def step(out, mb):
        return vocab_parallel_cross_entropy(out.float(), mb["labels"]).mean(), None

    model.zero_grad()
    run_forward(model, parallel, [{"tokens": tokens, "labels": labels}], step, forward_only=False)
    if parallel.pp_size > 1 and model.share_embeddings_and_output_weights:
        # The first stage's embedding and the last stage's tied copy must take the same step.
        weight = model.shared_embedding_or_output_weight()
        dist.all_reduce(weight.grad, group=parallel_state.get_embedding_group())
    opt = torch.optim.Adam([p for p in model.parameters() if p.grad is not None], lr=2e-2)
    opt.step()


def check_sync(model, parallel, arch, engine, prompts, tag: str) -> list[list[int]]:
    from prime_megatron.resharding import verify_weight_sync

    report = verify_weight_sync(model, parallel, engine, prompts, arch.vocab_size, NEW_TOKENS)
    log(parallel, f"VERIFY {tag}", json.dumps(report))
    assert report["greedy_match"], report
    assert report["greedy_logp"]["abs_max"] < 1e-3, report
    assert report["sampled_logp"]["abs_max"] < 1e-3, report
    return engine.greedy(prompts, NEW_TOKENS).response_ids


def check_buckets(stats: dict, plan) -> None:
    largest_unit = max(
        sum(e.nbytes for e in plan.entries if e.module == m)
        for m in {e.module for e in plan.entries}
    )
    assert max(e.nbytes for e in plan.entries) > BUCKET_BYTES
    assert stats["n_buckets"] > len({e.module for e in plan.entries}) // 2, stats
    assert stats["peak_bucket_bytes"] <= max(BUCKET_BYTES, largest_unit), stats
    for bucket in plan.buckets:  # only a lone oversized module may exceed the bucket size
        assert len({e.module for e in bucket}) == 1 or sum(e.nbytes for e in bucket) <= BUCKET_BYTES


def check_sampling(engine, prompts) -> None:
    a = engine.generate(prompts, K, seed=7)
    b = engine.generate(prompts, K, seed=7)
    c = engine.generate(prompts, K, seed=8)
    assert a == b, "seeded sampling is not reproducible"
    assert a.response_ids != c.response_ids, "different seeds gave the same samples"
    assert len(a) == len(prompts) * K
    assert a.group_index == [p for p in range(len(prompts)) for _ in range(K)]
    assert all(a.prompt_ids[i] == list(prompts[a.group_index[i]]) for i in range(len(a)))
    for p in range(len(prompts)):  # K distinct samples per prompt, not K copies
        group = a.response_ids[p * K : (p + 1) * K]
        assert len({tuple(r) for r in group}) > 1, group
    assert all(len(r) == len(lp) for r, lp in zip(a.response_ids, a.response_logprobs, strict=True))
    assert all(t == (len(r) == engine.cfg.max_response_len) for t, r in
               zip(a.truncated, a.response_ids, strict=True))  # fmt: skip
    assert a.weight_version == engine.weight_version
    # More prompt tokens than one scheduler step takes: seeded requests must not be
    # prefilled in chunks on CPU (vLLM would rewind a CPU generator and fail).
    many = [list(prompts[i % len(prompts)]) + [i % 7] for i in range(160)]
    big = engine.generate(many, K, seed=3)
    assert len(big) == len(many) * K and big.group_index[-1] == len(many) - 1


def check_memory(model, parallel, arch, engine) -> None:
    from prime_megatron.resharding import sync_weights
    from prime_megatron.resharding.memory import rss_bytes

    rss = []
    for _ in range(N_SYNCS):
        sync_weights(model, parallel, arch, engine, BUCKET_BYTES)
        rss.append(rss_bytes())
    growth = rss[-1] - rss[2]  # the first syncs warm up allocator pools
    log(parallel, f"RSS after syncs (MiB): {[round(r / 2**20) for r in rss]}")
    assert growth < RSS_SLACK, f"RSS grew {growth / 2**20:.1f} MiB over {N_SYNCS - 3} syncs"


def main() -> None:
    ckpt, tp, pp, rollout_tp = sys.argv[1:5]
    from prime_megatron.checkpoint.convert import load_megatron_model
    from prime_megatron.distributed.init import initialize_parallel, seed_all
    from prime_megatron.resharding import build_plan, sync_weights
    from prime_megatron.rollout import RolloutConfig, RolloutEngine

    parallel = initialize_parallel(int(tp), int(pp))
    seed_all(1234, parallel)
    model, meta = load_megatron_model(Path(ckpt), parallel)
    arch = meta.arch
    cfg = RolloutConfig(tensor_parallel_size=int(rollout_tp), max_prompt_len=16,
                        max_response_len=10, kv_cache_gib=0.25, load_format="dummy")  # fmt: skip
    engine = RolloutEngine(Path(ckpt) / "hf", cfg, seed=0)  # config only: weights come by sync
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, arch.vocab_size, (n,), generator=gen).tolist() for n in PROMPT_LENS]
    try:
        engine.generate(prompts, K)
        raise AssertionError("generate ran on dummy weights")
    except RuntimeError as e:
        assert "sync" in str(e)

    stats = sync_weights(model, parallel, arch, engine, BUCKET_BYTES)
    log(parallel, "SYNC", json.dumps(stats))
    check_buckets(stats, build_plan(model, parallel, arch, BUCKET_BYTES))
    before = check_sync(model, parallel, arch, engine, prompts, "v1")

    optimizer_step(model, parallel, arch.vocab_size)
    assert engine.greedy(prompts, NEW_TOKENS).response_ids == before  # vLLM not yet synced
    stats = sync_weights(model, parallel, arch, engine, BUCKET_BYTES)
    assert stats["weight_version"] == 2, stats
    after = check_sync(model, parallel, arch, engine, prompts, "v2")
    assert after != before, "the optimizer step did not change vLLM's outputs"

    check_sampling(engine, prompts)
    check_memory(model, parallel, arch, engine)
    log(parallel, f"SYNC_CHECK_OK tp={tp} pp={pp} rollout_tp={rollout_tp}")


if __name__ == "__main__":
    main()
