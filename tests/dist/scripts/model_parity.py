"""torchrun script: load a Megatron checkpoint at a TP/PP layout, check logits against HF
transformers (fp32), then save the model again from this layout.

args: HF_DIR CKPT_DIR TP PP OUT_CKPT_DIR; CKPT_DIR "from-hf" maps HF_DIR in memory instead
(the trainer's model.source=hf).
"""

import sys
from pathlib import Path

import torch


def main() -> None:
    hf_dir, ckpt, tp, pp, out = sys.argv[1:6]
    tp, pp = int(tp), int(pp)
    from transformers import AutoModelForCausalLM

    from prime_megatron.checkpoint.convert import (
        InMemoryHFCheckpoint,
        load_megatron_model,
        save_megatron_checkpoint,
    )
    from prime_megatron.distributed.init import initialize_parallel, seed_all
    from prime_megatron.models.forward import full_logits

    parallel = initialize_parallel(tp, pp)
    seed_all(1234, parallel)
    if ckpt == "from-hf":
        source = InMemoryHFCheckpoint(Path(hf_dir), tp, pp, torch.float32)
        model, meta, side_files = source.load(parallel), source.meta, Path(hf_dir)
    else:
        model, meta = load_megatron_model(Path(ckpt), parallel)
        side_files = Path(ckpt) / "hf"
    vocab = meta.arch.vocab_size
    tokens = torch.randint(0, vocab, (4, 24), generator=torch.Generator().manual_seed(0))
    logits = full_logits(model, parallel, tokens, vocab, micro_batch_size=2)
    if parallel.is_last_stage:
        hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
        with torch.no_grad():
            ref = hf(tokens).logits
        diff = (logits - ref).abs().max().item()
        print(f"PARITY tp={tp} pp={pp} max_abs_diff={diff:.3e}", flush=True)
        assert logits.shape == ref.shape, (logits.shape, ref.shape)
        assert diff <= 1e-4, diff
    else:
        assert logits is None
    _check_trainer_logprobs(model, parallel, tokens, vocab, hf_dir)
    save_megatron_checkpoint(model, Path(out), meta, hf_side_files=side_files, overwrite=True)


def _check_trainer_logprobs(model, parallel, tokens, vocab: int, hf_dir: str) -> None:
    """The trainer's pass (vocab-parallel, padded output layer) gives transformers' log-probs
    over the real vocabulary: Megatron's padding rows stay out of the softmax."""
    from transformers import AutoModelForCausalLM

    from prime_megatron.passes.batch import SampleBatch
    from prime_megatron.passes.run import run_pass

    # Ragged responses, longest and shortest in different micro-batches: without PP the
    # pass sorts and trims them, and must still put each log-prob in its own place.
    ends = [24, 6, 13, 9]
    pairs = [(t[:4].tolist(), t[4:end].tolist()) for t, end in zip(tokens, ends, strict=True)]
    batch = SampleBatch.from_pairs(pairs, pad_id=0)
    logp = run_pass(model, parallel, batch, 2, vocab_size=vocab).logp
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = torch.log_softmax(hf(batch.tokens).logits[:, :-1], dim=-1)
    ref = ref.gather(-1, batch.labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    diff = ((logp - ref) * batch.mask).abs().max().item()
    print(f"TRAINER_LOGPROBS max_abs_diff={diff:.3e}", flush=True)
    assert diff <= 1e-4, diff
    assert not logp[~batch.mask.bool()].any()  # off the responses: zeros, as documented


if __name__ == "__main__":
    main()
    from prime_megatron.distributed.init import shutdown_distributed

    shutdown_distributed()
