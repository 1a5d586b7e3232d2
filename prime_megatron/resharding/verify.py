"""Is vLLM sampling from the weights the trainer holds? Greedy match and log-prob mismatch.

* ``greedy_decode_megatron``: Megatron's own greedy continuation (full forward per token,
  through the pipeline schedule), the reference vLLM's greedy output must equal.
* ``megatron_response_logprobs``: the trainer-side log-probs of a rollout batch's tokens.
* ``logprob_mismatch``: statistics of |logp_vllm - logp_megatron| over response tokens; a
  pure function the trainer calls every step with log-probs it computes anyway.
* ``batch_mismatch``: that statistic for a rollout batch against Megatron's pass.
* ``verify_weight_sync``: all of the above after a sync (``tools/verify_weight_sync.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.distributed.rank import compute_device
from prime_megatron.models.forward import gather_vocab, last_position_logits, run_forward
from prime_megatron.passes.batch import SampleBatch
from prime_megatron.passes.run import broadcast_from_last_stage, run_pass


def _left_pad(rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """[b, width] token ids (pad 0) and key mask (True on real tokens), on the device."""
    width = max(map(len, rows))
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    key_mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        tokens[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
        key_mask[i, width - len(row) :] = True
    return {"tokens": tokens.to(compute_device()), "key_mask": key_mask.to(compute_device())}


def greedy_decode_megatron(
    model,
    parallel: ParallelGroups,
    prompt_ids: Sequence[Sequence[int]],
    max_new_tokens: int,
    vocab_size: int,
) -> list[list[int]]:
    """Collective: ``max_new_tokens`` greedy tokens per prompt (no EOS stop), on every rank.

    Prompts are left-padded into one batch; each step is one full forward (no KV cache),
    which shares no code with vLLM's decoding path; only the last position's logits are
    computed.
    """
    seqs = [list(p) for p in prompt_ids]

    def next_token(out: torch.Tensor, mb: dict) -> tuple[None, torch.Tensor]:
        return None, gather_vocab(out[:, -1].float(), parallel, vocab_size).argmax(-1)

    for _ in range(max_new_tokens):
        with torch.no_grad(), last_position_logits(model):
            outs = run_forward(model, parallel, [_left_pad(seqs)], next_token)
        nxt = outs[0] if outs else torch.empty(len(seqs), dtype=torch.long, device=compute_device())
        for seq, tok in zip(seqs, broadcast_from_last_stage(nxt, parallel).tolist(), strict=True):
            seq.append(tok)
    return [seq[len(p) :] for seq, p in zip(seqs, prompt_ids, strict=True)]


def megatron_response_logprobs(
    model,
    parallel: ParallelGroups,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    vocab_size: int,
    temperature: float = 1.0,
    micro_batch_size: int = 8,
) -> torch.Tensor:
    """Collective: log softmax(logits / T) of each response token, [N, T] fp32 on every rank.

    Row i holds response i's log-probs left-aligned, zeros past its end (the layout of
    ``RolloutBatch.padded_responses``). The trainer's pass over the real vocabulary.
    """
    batch = SampleBatch.from_pairs(zip(prompt_ids, response_ids, strict=True), pad_id=0)
    logp = run_pass(
        model, parallel, batch, micro_batch_size, temperature, vocab_size=vocab_size
    ).logp
    return _left_align(logp, batch.mask.bool(), max((len(r) for r in response_ids), default=0))


def _left_align(values: torch.Tensor, valid: torch.Tensor, width: int) -> torch.Tensor:
    """Per row, the ``valid`` entries of ``values`` moved to the front of a [b, width] row."""
    out = values.new_zeros(values.shape[0], width)
    for i in range(values.shape[0]):
        row = values[i][valid[i]]
        out[i, : row.numel()] = row
    return out


def logprob_mismatch(
    rollout_logprobs: torch.Tensor, trainer_logprobs: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """Statistics of |rollout - trainer| log-probs over ``mask`` (all [N, T]).

    ``signed_mean`` (rollout - trainer) shows a systematic bias, e.g. a temperature that is
    applied on one side only. A correct sync gives ~1e-5 in fp32 and ~1e-2 in bf16. With no
    token to compare the statistics are NaN (not measured), never a reassuring 0.
    """
    diff = (rollout_logprobs.double() - trainer_logprobs.double())[mask.bool()]
    if diff.numel() == 0:
        nan = float("nan")
        return {"abs_mean": nan, "abs_max": nan, "abs_p50": nan, "abs_p90": nan,
                "abs_p99": nan, "signed_mean": nan, "n_tokens": 0}  # fmt: skip
    absd = diff.abs()
    q = torch.quantile(absd, torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64)).tolist()
    return {
        "abs_mean": absd.mean().item(),
        "abs_max": absd.max().item(),
        "abs_p50": q[0],
        "abs_p90": q[1],
        "abs_p99": q[2],
        "signed_mean": diff.mean().item(),
        "n_tokens": int(diff.numel()),
    }


def verify_weight_sync(
    model,
    parallel: ParallelGroups,
    engine,
    prompt_ids: Sequence[Sequence[int]],
    vocab_size: int,
    max_new_tokens: int = 16,
    samples_per_prompt: int = 2,
    seed: int = 0,
) -> dict:
    """Collective: after a sync, compare vLLM with Megatron; the same report on every rank.

    * ``greedy_match``: vLLM's greedy continuation equals Megatron's, token for token
      (``greedy_mismatched_rows`` lists the prompts that differ);
    * ``greedy_logp``: log-prob mismatch on those greedy tokens;
    * ``sampled_logp``: log-prob mismatch on sampled tokens at the engine's temperature
      (exact comparison needs top_p = 1: vLLM renormalises over the nucleus).
    """
    vllm_greedy = engine.greedy(prompt_ids, max_new_tokens)
    meg_greedy = greedy_decode_megatron(model, parallel, prompt_ids, max_new_tokens, vocab_size)
    pairs = zip(vllm_greedy.response_ids, meg_greedy, strict=True)
    bad_rows = [i for i, (a, b) in enumerate(pairs) if a != b]
    sampled = engine.generate(prompt_ids, samples_per_prompt, seed=seed)
    return {
        "weight_version": engine.weight_version,
        "greedy_match": not bad_rows,
        "greedy_mismatched_rows": bad_rows,
        "greedy_logp": batch_mismatch(model, parallel, vllm_greedy, vocab_size, 1.0),
        "sampled_logp": batch_mismatch(
            model, parallel, sampled, vocab_size, engine.cfg.temperature
        ),
    }


def batch_mismatch(model, parallel, batch, vocab_size: int, temperature: float) -> dict:
    """Collective: ``logprob_mismatch`` of a ``RolloutBatch``'s log-probs against the
    trainer's pass over the same tokens at ``temperature``."""
    _, rollout_logp, mask = batch.padded_responses()
    trainer_logp = megatron_response_logprobs(
        model, parallel, batch.prompt_ids, batch.response_ids, vocab_size, temperature
    )
    return logprob_mismatch(rollout_logp, trainer_logp, mask)
