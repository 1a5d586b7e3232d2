"""pass@1 (and maj@k) of an HF or prime_megatron checkpoint on a prompt dataset, with vLLM
and the project's verifiers.

    python tools/eval.py --model CKPT_OR_HF_DIR --data heldout.jsonl [--prompts 1000]
        [--samples 1] [--max-response-len 64] [--prompt-format chat]
    torchrun --nproc_per_node 2 tools/eval.py ...      # rollout TP / replicas over ranks

--samples 1 decodes greedily (pass@1); --samples K > 1 samples at --temperature and reports
the mean accuracy (pass@1) and majority-vote accuracy (maj@K). Prints one JSON line;
--responses FILE also keeps every response with its row and score (the format of a run's
eval/*.jsonl).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="Megatron checkpoint or HF dir")
    p.add_argument("--data", required=True, nargs="+", help="jsonl/json/parquet prompt files")
    p.add_argument("--prompts", type=int, default=0, help="first N prompts (0 = all)")
    p.add_argument("--samples", type=int, default=1)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-prompt-len", type=int, default=1024)
    p.add_argument("--max-response-len", type=int, default=1024)
    p.add_argument("--prompt-format", choices=["chat", "plain"], default="chat")
    p.add_argument("--rollout-tp", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--responses", type=Path, help="also write every response here (jsonl)")
    return p.parse_args(argv)


def load_engine(model_dir: Path, rollout_cfg, scratch: Path):
    """(engine, tokenizer dir). A Megatron checkpoint is loaded (TP=1, a replica per rank)
    and synced into vLLM in memory; an HF dir is loaded by vLLM directly."""
    from dataclasses import replace

    from prime_megatron.checkpoint.convert import HF_SIDE_DIR, load_megatron_model
    from prime_megatron.checkpoint.megatron_io import META_FILE
    from prime_megatron.rollout.engine import RolloutEngine

    if not (model_dir / META_FILE).is_file():
        return RolloutEngine(model_dir, rollout_cfg), model_dir
    from prime_megatron.distributed.init import initialize_parallel
    from prime_megatron.resharding import sync_weights
    from prime_megatron.trainer.setup import rollout_model_dir

    parallel = initialize_parallel(1, 1)
    model, meta = load_megatron_model(model_dir, parallel)
    hf_dir = rollout_model_dir(scratch, model_dir / HF_SIDE_DIR, meta.hf_config)
    engine = RolloutEngine(hf_dir, replace(rollout_cfg, load_format="dummy"))
    sync_weights(model, parallel, meta.arch, engine, rollout_cfg.bucket_bytes)
    return engine, hf_dir


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch.distributed as dist
    from transformers import AutoTokenizer

    from prime_megatron.data.dataset import PromptDataset
    from prime_megatron.data.template import PromptRenderer, answer_end_ids
    from prime_megatron.distributed.init import init_distributed
    from prime_megatron.distributed.rank import is_rank0
    from prime_megatron.rewards.config import RewardConfig
    from prime_megatron.rewards.manager import RewardManager
    from prime_megatron.rollout.config import RolloutConfig
    from prime_megatron.trainer.collect import PromptEncoder
    from prime_megatron.trainer.evaluate import evaluate, write_responses

    init_distributed()
    rollout_cfg = RolloutConfig(
        tensor_parallel_size=args.rollout_tp, max_prompt_len=args.max_prompt_len,
        max_response_len=args.max_response_len, temperature=args.temperature,
    )  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="prime-eval-")) if is_rank0() else None
    shared = [scratch]
    dist.broadcast_object_list(shared, src=0)
    engine, tok_dir = load_engine(args.model, rollout_cfg, shared[0])
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    rows = list(PromptDataset.load(args.data))
    rows = rows[: args.prompts] if args.prompts else rows
    renderer = PromptRenderer(args.prompt_format, tokenizer)
    encode = PromptEncoder(renderer, tokenizer, args.max_prompt_len)
    engine.stop_token_ids = answer_end_ids(renderer)
    rewards = RewardManager(RewardConfig()) if is_rank0() else None
    run = evaluate(engine, rows, encode, tokenizer, rewards, samples=args.samples, seed=args.seed)
    if is_rank0():
        metrics = {k: round(v, 4) for k, v in run.metrics.items()}
        print(json.dumps({"model": str(args.model), **metrics}))
        if args.responses:
            write_responses(args.responses, run)
        rewards.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
