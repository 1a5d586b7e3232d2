"""torchrun script: load a Megatron checkpoint at a TP/PP layout, check logits and the
trainer's log-probs against HF transformers (fp32), then save the model from this layout.

args: HF_DIR CKPT_DIR LAYOUTS OUT_CKPT_DIR [TOKENS_JSON]

LAYOUTS is "TPxPP", or a chain "2x1,1x2,1x1" run in one launch (one start-up instead of
one per layout): each layout loads what the one before it saved (OUT_CKPT_DIR.0, .1, ...)
and the last saves to OUT_CKPT_DIR, so converting that back checks every layout's save.
The world size must be a multiple of each TP x PP (the rest is data parallel). CKPT_DIR
"from-hf" maps HF_DIR in memory instead (the trainer's model.source=hf). The input is
4 x 24 token ids: random over the whole vocabulary, or TOKENS_JSON's (e.g. chat prompts
encoded with the model's tokenizer).
"""

import gc
import json
import sys
from pathlib import Path

import torch

SHAPE = (4, 24)  # rows, tokens: the trainer-pass check below cuts responses up to 24 long


def main() -> None:
    hf_dir, ckpt, layouts, out = sys.argv[1:5]
    tokens_file = sys.argv[5] if len(sys.argv) > 5 else None
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    chain = [tuple(map(int, layout.split("x"))) for layout in layouts.split(",")]
    source = ckpt
    for i, (tp, pp) in enumerate(chain):
        target = out if i == len(chain) - 1 else f"{out}.{i}"
        check_layout(hf, Path(hf_dir), source, tp, pp, Path(target), tokens_file)
        source = target


def check_layout(hf, hf_dir: Path, ckpt: str, tp: int, pp: int, out: Path, tokens_file) -> None:
    """Load ``ckpt`` at TP x PP, compare with ``hf``, save to ``out`` from this layout."""
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
        source = InMemoryHFCheckpoint(hf_dir, tp, pp, torch.float32)
        model, meta, side_files = source.load(parallel), source.meta, hf_dir
    else:
        model, meta = load_megatron_model(Path(ckpt), parallel)
        side_files = Path(ckpt) / "hf"
    vocab = meta.arch.vocab_size
    tokens = _tokens(vocab, tokens_file)
    logits = full_logits(model, parallel, tokens, vocab, micro_batch_size=2)
    if parallel.is_last_stage:
        with torch.no_grad():
            ref = hf(tokens).logits
        diff = (logits - ref).abs().max().item()
        print(f"PARITY tp={tp} pp={pp} max_abs_diff={diff:.3e}", flush=True)
        assert logits.shape == ref.shape, (logits.shape, ref.shape)
        assert diff <= 1e-4, diff
    else:
        assert logits is None
    _check_trainer_logprobs(model, parallel, tokens, vocab, hf)
    save_megatron_checkpoint(model, out, meta, hf_side_files=side_files, overwrite=True)
    del model
    gc.collect()  # the next layout builds its own copy


def _tokens(vocab: int, tokens_file: str | None) -> torch.Tensor:
    if tokens_file is None:
        return torch.randint(0, vocab, SHAPE, generator=torch.Generator().manual_seed(0))
    tokens = torch.tensor(json.loads(Path(tokens_file).read_text()), dtype=torch.long)
    if tuple(tokens.shape) != SHAPE or not 0 <= tokens.min() <= tokens.max() < vocab:
        raise ValueError(f"{tokens_file}: need {SHAPE} token ids in [0, {vocab}), got "
                         f"shape {tuple(tokens.shape)}")  # fmt: skip
    return tokens


def _check_trainer_logprobs(model, parallel, tokens, vocab: int, hf) -> None:
    """The trainer's pass (vocab-parallel, padded output layer) gives transformers' log-probs
    over the real vocabulary: Megatron's padding rows stay out of the softmax."""
    from prime_megatron.passes.batch import SampleBatch
    from prime_megatron.passes.run import run_pass

    # Ragged responses, longest and shortest in different micro-batches: without PP the
    # pass sorts and trims them, and must still put each log-prob in its own place.
    ends = [24, 6, 13, 9]
    pairs = [(t[:4].tolist(), t[4:end].tolist()) for t, end in zip(tokens, ends, strict=True)]
    batch = SampleBatch.from_pairs(pairs, pad_id=0)
    logp = run_pass(model, parallel, batch, 2, vocab_size=vocab).logp
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
