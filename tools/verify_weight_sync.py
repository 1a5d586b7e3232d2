"""Check the Megatron -> vLLM weight sync on a checkpoint, at any training/rollout layout.

    torchrun --nproc_per_node N tools/verify_weight_sync.py --ckpt CKPT \\
        [--tp T] [--pp P] [--rollout-tp R] [--prompts 8] [--max-new-tokens 16]

Loads the Megatron checkpoint at TP x PP (N must be a multiple of T*P and of R), starts
vLLM from the checkpoint's config only (random weights), syncs the weights in memory and
compares: vLLM's greedy continuation must equal Megatron's own greedy decode token for
token, and |logp_vllm - logp_megatron| on greedy and sampled tokens must stay under
--max-logp-diff. Prompts are random token ids (seeded). Rank 0 prints one JSON line;
the exit code is 0 on agreement, 1 on a mismatch, 2 on bad input.
"""

import argparse
import json
import sys
from pathlib import Path


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ckpt", required=True, type=Path, help="Megatron checkpoint (converted)")
    p.add_argument("--tp", type=int, default=1, help="Megatron tensor-parallel size")
    p.add_argument("--pp", type=int, default=1, help="Megatron pipeline-parallel size")
    p.add_argument("--rollout-tp", type=int, default=1, help="vLLM tensor-parallel size")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--samples", type=int, default=2, help="sampled continuations per prompt")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--bucket-mb", type=int, default=64)
    p.add_argument("--kv-cache-gib", type=float, default=1.0, help="CPU only")
    p.add_argument("--max-logp-diff", type=float, default=None,
                   help="default 1e-3 for float32 checkpoints, 0.1 otherwise")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Collective: load, sync, verify; the report (identical on every rank)."""
    import torch

    from prime_megatron.checkpoint.convert import HF_SIDE_DIR, load_megatron_model
    from prime_megatron.distributed.init import initialize_parallel, seed_all
    from prime_megatron.resharding import sync_weights, verify_weight_sync
    from prime_megatron.rollout import RolloutConfig, RolloutEngine

    parallel = initialize_parallel(args.tp, args.pp)
    seed_all(args.seed, parallel)
    model, meta = load_megatron_model(args.ckpt, parallel)
    cfg = RolloutConfig(
        tensor_parallel_size=args.rollout_tp,
        max_prompt_len=args.prompt_len,
        max_response_len=args.max_new_tokens,
        temperature=args.temperature,
        dtype=meta.params_dtype,
        kv_cache_gib=args.kv_cache_gib,
        bucket_mb=args.bucket_mb,
        load_format="dummy",  # every weight vLLM uses must come through the sync
    )
    engine = RolloutEngine(args.ckpt / HF_SIDE_DIR, cfg, seed=args.seed)
    sync = sync_weights(model, parallel, meta.arch, engine, cfg.bucket_bytes)
    gen = torch.Generator().manual_seed(args.seed)
    vocab = meta.arch.vocab_size
    prompts = torch.randint(0, vocab, (args.prompts, args.prompt_len), generator=gen).tolist()
    report = verify_weight_sync(
        model, parallel, engine, prompts, vocab, args.max_new_tokens, args.samples, args.seed
    )
    limit = args.max_logp_diff or (1e-3 if meta.params_dtype == "float32" else 0.1)
    worst = max(report["greedy_logp"]["abs_max"], report["sampled_logp"]["abs_max"])
    layout = {"tp": args.tp, "pp": args.pp, "rollout_tp": args.rollout_tp}
    return {**layout, "ok": report["greedy_match"] and worst <= limit, "max_logp_diff": limit,
            "sync": sync, **report}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch.distributed as dist

    from prime_megatron.checkpoint.cli import USER_ERRORS

    try:
        result = run(args)
    except USER_ERRORS as e:
        print(f"verify_weight_sync: error: {e}", file=sys.stderr)
        return 2
    if dist.get_rank() == 0:
        print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
