"""Is vLLM sampling from the weights the trainer holds? Greedy match and log-prob mismatch.

* ``greedy_decode_megatron``: Megatron's own greedy continuation (full forward per token,
  through the pipeline schedule), the reference vLLM's greedy output must equal.
* ``megatron_response_logprobs``: the trainer-side log-probs of a rollout batch's tokens.
* ``logprob_mismatch``: statistics of |logp_vllm - logp_megatron| over response tokens; a
  pure function the trainer calls every step with log-probs it computes anyway.
* ``verify_weight_sync``: all of the above after a sync (``tools/verify_weight_sync.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.kernels import token_logprobs
from prime_megatron.models.forward import gather_vocab, run_forward

IGNORE = -100


def _device() -> torch.device:
    """Where Megatron's inputs live: the current GPU, or the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _to_device(mb: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.to(_device()) for k, v in mb.items()}


def broadcast_from_last_stage(t: torch.Tensor, groups: ParallelGroups) -> torch.Tensor:
    """Make the last pipeline stage's ``t`` (same shape/dtype everywhere) every stage's."""
    if groups.pp_size > 1:
        src = dist.get_global_rank(groups.pp, groups.pp_size - 1)
        dist.broadcast(t, src=src, group=groups.pp)
    return t


def _pad(rows: Sequence[Sequence[int]], width: int, left: bool) -> tuple[torch.Tensor, ...]:
    """[b, width] token ids (pad 0) and key mask (True on real tokens)."""
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        tokens[i, cols] = torch.tensor(list(row), dtype=torch.long)
        mask[i, cols] = True
    return tokens, mask


def greedy_decode_megatron(
    model,
    groups: ParallelGroups,
    prompt_ids: Sequence[Sequence[int]],
    max_new_tokens: int,
    vocab_size: int,
) -> list[list[int]]:
    """Collective: ``max_new_tokens`` greedy tokens per prompt (no EOS stop), on every rank.

    Prompts are left-padded into one batch; each step is one full forward (no KV cache),
    which is slow but shares no code with vLLM's decoding path.
    """
    seqs = [list(p) for p in prompt_ids]

    def next_token(out: torch.Tensor, mb: dict) -> tuple[None, torch.Tensor]:
        return None, gather_vocab(out[:, -1].float(), groups, vocab_size).argmax(-1)

    for _ in range(max_new_tokens):
        tokens, key_mask = _pad(seqs, max(map(len, seqs)), left=True)
        with torch.no_grad():
            mb = _to_device({"tokens": tokens, "key_mask": key_mask})
            outs = run_forward(model, groups, [mb], next_token)
        nxt = outs[0] if outs else torch.empty(len(seqs), dtype=torch.long, device=_device())
        for seq, tok in zip(seqs, broadcast_from_last_stage(nxt, groups).tolist(), strict=True):
            seq.append(tok)
    return [seq[len(p) :] for seq, p in zip(seqs, prompt_ids, strict=True)]


def megatron_response_logprobs(
    model,
    groups: ParallelGroups,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    vocab_size: int,
    temperature: float = 1.0,
    micro_batch_size: int = 8,
) -> torch.Tensor:
    """Collective: log softmax(logits / T) of each response token, [N, T] fp32 on every rank.

    Row i holds response i's log-probs left-aligned, zeros past its end (the layout of
    ``RolloutBatch.padded_responses``).
    """
    seqs = [list(p) + list(r) for p, r in zip(prompt_ids, response_ids, strict=True)]
    width = max(map(len, seqs))
    resp_width = max((len(r) for r in response_ids), default=0)
    micro = []
    for lo in range(0, len(seqs), micro_batch_size):
        rows = range(lo, min(lo + micro_batch_size, len(seqs)))
        tokens, key_mask = _pad([seqs[i] for i in rows], width, left=False)
        labels = torch.full_like(tokens, IGNORE)
        for j, i in enumerate(rows):  # position t predicts token t + 1 of the response
            start, end = len(prompt_ids[i]) - 1, len(seqs[i]) - 1
            labels[j, start:end] = tokens[j, start + 1 : end + 1]
        micro.append({"tokens": tokens, "key_mask": key_mask, "labels": labels})

    def response_logprobs(out: torch.Tensor, mb: dict) -> tuple[None, torch.Tensor]:
        logits = gather_vocab(out.float(), groups, vocab_size)
        logp = token_logprobs(logits, mb["labels"], temperature, ignore_index=IGNORE)
        return None, _left_align(logp, mb["labels"] != IGNORE, resp_width)

    # Pipeline micro-batches must share one shape: pad the last one with empty rows.
    n_real = len(seqs)
    micro = [_to_device(mb) for mb in _pad_micro_batches(micro, micro_batch_size)]
    with torch.no_grad():
        outs = run_forward(model, groups, micro, response_logprobs)
    empty = torch.empty(n_real, resp_width, device=_device())
    result = torch.cat(outs)[:n_real] if outs else empty
    return broadcast_from_last_stage(result.contiguous(), groups).cpu()


def _left_align(values: torch.Tensor, valid: torch.Tensor, width: int) -> torch.Tensor:
    """Per row, the ``valid`` entries of ``values`` moved to the front of a [b, width] row."""
    out = values.new_zeros(values.shape[0], width)
    for i in range(values.shape[0]):
        row = values[i][valid[i]]
        out[i, : row.numel()] = row
    return out


def _pad_micro_batches(micro: list[dict], size: int) -> list[dict]:
    last = micro[-1]
    missing = size - last["tokens"].shape[0]
    if missing <= 0:
        return micro
    filler = {
        "tokens": torch.zeros(missing, last["tokens"].shape[1], dtype=torch.long),
        "key_mask": torch.ones(missing, last["tokens"].shape[1], dtype=torch.bool),
        "labels": torch.full((missing, last["tokens"].shape[1]), IGNORE, dtype=torch.long),
    }
    micro[-1] = {k: torch.cat([last[k], filler[k]]) for k in last}
    return micro


def logprob_mismatch(
    rollout_logprobs: torch.Tensor, trainer_logprobs: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """Statistics of |rollout - trainer| log-probs over ``mask`` (all [N, T]).

    ``signed_mean`` (rollout - trainer) shows a systematic bias, e.g. a temperature that is
    applied on one side only. A correct sync gives ~1e-5 in fp32 and ~1e-2 in bf16.
    """
    diff = (rollout_logprobs.double() - trainer_logprobs.double())[mask.bool()]
    if diff.numel() == 0:
        return {"abs_mean": 0.0, "abs_max": 0.0, "abs_p50": 0.0, "abs_p90": 0.0,
                "abs_p99": 0.0, "signed_mean": 0.0, "n_tokens": 0}  # fmt: skip
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
    groups: ParallelGroups,
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
    meg_greedy = greedy_decode_megatron(model, groups, prompt_ids, max_new_tokens, vocab_size)
    pairs = zip(vllm_greedy.response_ids, meg_greedy, strict=True)
    bad_rows = [i for i, (a, b) in enumerate(pairs) if a != b]
    sampled = engine.generate(prompt_ids, samples_per_prompt, seed=seed)
    return {
        "weight_version": engine.weight_version,
        "greedy_match": not bad_rows,
        "greedy_mismatched_rows": bad_rows,
        "greedy_logp": _batch_mismatch(model, groups, vllm_greedy, vocab_size, 1.0),
        "sampled_logp": _batch_mismatch(model, groups, sampled, vocab_size, engine.cfg.temperature),
    }


def _batch_mismatch(model, groups, batch, vocab_size: int, temperature: float) -> dict:
    _, rollout_logp, mask = batch.padded_responses()
    trainer_logp = megatron_response_logprobs(
        model, groups, batch.prompt_ids, batch.response_ids, vocab_size, temperature
    )
    return logprob_mismatch(rollout_logp, trainer_logp, mask)
