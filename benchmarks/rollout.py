"""Benchmark: rollout tokens/s, our vLLM engine vs transformers ``generate`` (same work).

    python benchmarks/rollout.py            # Qwen2.5-0.5B shape, 8 prompts x K=4 x 64 tokens
    python benchmarks/rollout.py --small    # quick, same code path

Both sides sample K continuations of the same prompts (random token ids, one length) at
temperature 1.0 / top_p 1.0, exactly ``--new-tokens`` tokens each (the random model has no
EOS), from the same random weights in the same dtype, with the same torch thread count.
vLLM runs through ``RolloutEngine.generate`` (one process, world of one); transformers
runs one batched ``generate(num_return_sequences=K)``. Time = best of ``--repeats`` after a
warm-up call. Rank 0 prints one JSON line.
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from prime_megatron.evidence.provenance import record

TARGET_SPEEDUP = 5.0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--small", action="store_true")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--k", type=int, default=4, help="samples per prompt")
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--compile", action="store_true",
                   help="vLLM with torch.compile (CPU default: eager)")  # fmt: skip
    return p.parse_args()


def best_of(repeats: int, fn) -> float:
    fn()  # warm-up (allocations, first-call paths)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def transformers_seconds(model_dir: Path, prompts: torch.Tensor, args) -> float:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, args.dtype))
    model.eval()

    def run() -> None:
        with torch.no_grad():
            out = model.generate(
                prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                temperature=1.0, top_p=1.0, top_k=0, num_return_sequences=args.k,
                max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                pad_token_id=0,
            )  # fmt: skip
        assert out.shape == (len(prompts) * args.k, prompts.shape[1] + args.new_tokens)

    return best_of(args.repeats, run)


def vllm_seconds(model_dir: Path, prompts: torch.Tensor, args) -> float:
    from prime_megatron.rollout import RolloutConfig, RolloutEngine

    cfg = RolloutConfig(max_prompt_len=args.prompt_len, max_response_len=args.new_tokens,
                        dtype=args.dtype, kv_cache_gib=1.0,
                        enforce_eager=not args.compile)  # fmt: skip
    engine = RolloutEngine(model_dir, cfg)
    ids = prompts.tolist()

    def run() -> None:
        batch = engine.generate(ids, args.k)
        assert sum(map(len, batch.response_ids)) == len(ids) * args.k * args.new_tokens

    return best_of(args.repeats, run)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)  # before vLLM pins the thread count
    from prime_megatron.models.hf_factory import PRESETS, hf_config, save_random_hf_model

    shape = PRESETS["small" if args.small else "qwen2.5-0.5b"]
    config = hf_config("Qwen2ForCausalLM", max_position_embeddings=4096, **shape)
    model_dir = Path(tempfile.mkdtemp(prefix="rollout_bench_"))
    save_random_hf_model(model_dir, config, seed=0, dtype=getattr(torch, args.dtype))
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(0, shape["vocab_size"], (args.prompts, args.prompt_len), generator=gen)
    tokens = args.prompts * args.k * args.new_tokens
    try:
        hf_s = transformers_seconds(model_dir, prompts, args)
        vllm_s = vllm_seconds(model_dir, prompts, args)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    print(json.dumps({
        "benchmark": "rollout",
        **record(config=args),
        "model": "small" if args.small else "qwen2.5-0.5b-shape",
        "dtype": args.dtype,
        "vllm_compiled": args.compile,
        "threads": args.threads,
        "prompts": args.prompts,
        "k": args.k,
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
        "generated_tokens": tokens,
        "vllm_tok_s": round(tokens / vllm_s, 1),
        "transformers_tok_s": round(tokens / hf_s, 1),
        "speedup": round(hf_s / vllm_s, 2),
        "target_speedup_ge_5x": hf_s / vllm_s >= TARGET_SPEEDUP,
    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
