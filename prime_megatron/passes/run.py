"""Forward / backward passes of one model over a ``SampleBatch``, across TP, PP and DP.

Data parallelism: each DP rank takes a contiguous slice of the samples. Per-token outputs
(log-probs, entropy) are broadcast from the last pipeline stage and all-gathered over DP,
so every rank ends with full-batch tensors (the advantage math needs whole groups and
batch statistics). Training passes also leave gradients in the model for
``ShardedAdamW.step``. The samples compute on the rank's device; the results are on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.distributed.rank import compute_device
from prime_megatron.distributed.split import split_even
from prime_megatron.kernels import token_logprobs, token_logprobs_and_entropy
from prime_megatron.models.forward import run_forward
from prime_megatron.passes.batch import IGNORE, SampleBatch
from prime_megatron.passes.micro import (
    MicroBatching,
    pack_bins,
    pack_rows,
    plan_micro_batches,
    unpack,
)

# loss_fn(logp [b, S-1], entropy [b, S-1] or None, micro_batch) -> (loss, additive metrics)
LossFn = Callable[[Tensor, Tensor | None, SampleBatch], tuple[Tensor, dict[str, float]]]


@dataclass
class PassResult:
    logp: Tensor  # [N, S-1], detached, full batch, every rank; 0 off the labels
    entropy: Tensor | None  # [N, S-1] when asked for
    metrics: dict[str, float]  # summed over micro-batches and DP ranks


def run_pass(
    model,
    parallel: ParallelGroups,
    batch: SampleBatch,
    micro_batching: MicroBatching | int,
    temperature: float = 1.0,
    with_entropy: bool = False,
    loss_fn: LossFn | None = None,
    *,
    vocab_size: int,
) -> PassResult:
    """Forward (``loss_fn`` None) or forward+backward of ``batch`` on this model.

    ``micro_batching``: how this rank's rows are cut (``passes/micro.py``); an int is that
    many rows per micro-batch. A token budget or packing needs a single pipeline stage.

    ``loss_fn`` must return a loss already normalised for the whole (global) batch; its
    gradients accumulate in the model. The returned log-probs are those of the forward,
    i.e. of the weights before any update. They are over the real vocabulary
    (``vocab_size``, the HF config's): the padding rows Megatron adds to the output layer
    are masked out of the softmax, as vLLM and transformers never see them.
    """
    device = compute_device()
    mine = batch.select(split_even(batch.size, parallel.dp_size)[parallel.dp_rank]).to(device)
    if isinstance(micro_batching, int):
        micro_batching = MicroBatching(micro_batching)
    micro = _micro_batches(mine, micro_batching, ragged=parallel.pp_size == 1)

    def step(out: Tensor, m: dict) -> tuple[Tensor | None, tuple]:
        packed = m.get("packed")
        labels = m["mb"].labels if packed is None else packed.labels
        logp, ent = _token_stats(out, labels, parallel, temperature, with_entropy, vocab_size)
        if packed is not None:
            width = m["mb"].tokens.shape[1]
            logp = unpack(logp, packed, width)
            ent = unpack(ent, packed, width) if ent is not None else None
        n = len(m["rows"])
        loss, metrics = None, {}
        if loss_fn is not None:
            real = m["mb"].select(slice(0, n))
            loss, metrics = loss_fn(logp[:n], None if ent is None else ent[:n], real)
        ent = ent[:n].detach() if ent is not None else None
        return loss, (logp[:n].detach(), ent, metrics)

    outs = []
    if micro:
        with torch.set_grad_enabled(loss_fn is not None):
            outs = run_forward(model, parallel, micro, step, forward_only=loss_fn is None)
    # Off-label positions are 0 in the kernels' outputs: trimmed columns are zeros too.
    # Only the last stage has outputs; the others receive them in the broadcast.
    local = torch.zeros(2, mine.size, batch.tokens.shape[1] - 1, device=device)
    for m, (logp, ent, _) in zip(micro if outs else [], outs, strict=True):
        local[0, m["rows"], : logp.shape[1]] = logp
        if with_entropy:
            local[1, m["rows"], : ent.shape[1]] = ent
    full = _gather_dp(broadcast_from_last_stage(local, parallel), batch.size, parallel).cpu()
    metrics = _sum_metrics([m for _, _, m in outs], parallel, device)
    return PassResult(full[0], full[1] if with_entropy else None, metrics)


def _micro_batches(mine: SampleBatch, how: MicroBatching, ragged: bool) -> list[dict]:
    """This rank's micro-batches, each with the rows of ``mine`` it holds ("rows").

    ``ragged``: rows sorted by length, each micro-batch trimmed to its longest row (the
    same log-probs and losses with less padding computed), or packed. Otherwise (pipeline
    p2p buffers have one fixed shape) rows in order at full width, the last micro-batch
    padded with empty rows."""
    if ragged and how.pack:
        return _packed_micro_batches(mine, how.max_tokens)
    if ragged:
        plan = plan_micro_batches(mine.lengths(), how, mine.tokens.shape[1])
        chunks = [(rows, mine.select(rows).trimmed(width)) for rows, width in plan]
    else:
        if how.max_tokens:
            raise ValueError("a token budget or packing needs a single pipeline stage")
        micro_batch_size = how.rows
        padded = _pad_rows(mine, -(-mine.size // micro_batch_size) * micro_batch_size)
        starts = range(0, padded.size, micro_batch_size)
        chunks = [
            (torch.arange(i, min(i + micro_batch_size, mine.size), device=mine.tokens.device),
             padded.select(slice(i, i + micro_batch_size)))
            for i in starts
        ]  # fmt: skip
    return [{"tokens": mb.tokens, "mb": mb, "rows": rows} for rows, mb in chunks]


def _packed_micro_batches(mine: SampleBatch, max_tokens: int) -> list[dict]:
    """One packed sequence per micro-batch; "mb" keeps its rows in the padded layout (for
    the losses), trimmed to the longest."""
    lengths = mine.lengths()
    out = []
    for rows in pack_bins(lengths, max_tokens):
        mb = mine.select(rows).trimmed(int(lengths[rows].max()))
        packed = pack_rows(mb, lengths[rows])
        out.append({"tokens": packed.tokens, "position_ids": packed.position_ids,
                    "attention_mask": packed.attention_mask, "packed": packed, "mb": mb,
                    "rows": rows})  # fmt: skip
    return out


def _pad_rows(batch: SampleBatch, n: int) -> SampleBatch:
    """``batch`` with empty rows appended up to ``n`` (masked out, labels ignored)."""
    extra = n - batch.size
    if extra == 0:
        return batch
    blank = batch.select(slice(0, 1))
    fill_values = {"labels": IGNORE, "group": -1}
    fill = {
        k: torch.full_like(getattr(blank, k), fill_values.get(k, 0))
        for k in ("tokens", "labels", "mask", "rollout_logp", "outcome", "group", "truncated")
    }
    rows = SampleBatch(**fill, extras={k: torch.zeros_like(v) for k, v in blank.extras.items()})
    return SampleBatch.cat_rows([batch] + [rows] * extra)


def _token_stats(
    logits: Tensor,
    labels: Tensor,
    parallel: ParallelGroups,
    temperature: float,
    entropy: bool,
    vocab_size: int,
) -> tuple[Tensor, Tensor | None]:
    """[b, s, V/tp] vocab-parallel logits, labels [b, s-1] -> per-label log-probs (and
    entropy) [b, s-1]."""
    logits = _mask_vocab_padding(logits[:, :-1], parallel.tp_rank, vocab_size)
    tp_group = parallel.tp if parallel.tp_size > 1 else None
    if entropy:
        return token_logprobs_and_entropy(logits, labels, temperature, IGNORE, tp_group)
    return token_logprobs(logits, labels, temperature, IGNORE, tp_group), None


# Below any real logit, yet finite after division by a temperature: exp() of it is exactly 0
# and 0 * (log-prob) stays 0 in the entropy (-inf would give NaN there).
PADDING_LOGIT = -1.0e4


def _mask_vocab_padding(logits: Tensor, tp_rank: int, vocab_size: int) -> Tensor:
    """This rank's vocab shard [..., V/tp] with the columns past ``vocab_size`` (Megatron's
    padding to a multiple of 128 x TP) set to ``PADDING_LOGIT``; a copy only where a shard
    has padding."""
    width = logits.shape[-1]
    real = vocab_size - tp_rank * width  # real columns in this shard
    if real >= width:
        return logits
    padding = torch.arange(width, device=logits.device) >= max(real, 0)
    return logits.masked_fill(padding, PADDING_LOGIT)


def broadcast_from_last_stage(t: Tensor, parallel: ParallelGroups) -> Tensor:
    """Make the last pipeline stage's ``t`` (same shape/dtype everywhere) every stage's."""
    if parallel.pp_size > 1:
        src = dist.get_global_rank(parallel.pp, parallel.pp_size - 1)
        dist.broadcast(t, src=src, group=parallel.pp)
    return t


def _gather_dp(local: Tensor, n: int, parallel: ParallelGroups) -> Tensor:
    """[2, n_local, W] per DP rank -> [2, n, W] in sample order."""
    if parallel.dp_size == 1:
        return local
    slices = split_even(n, parallel.dp_size)
    longest = max(s.stop - s.start for s in slices)
    padded = local.new_zeros(local.shape[0], longest, local.shape[2])
    padded[:, : local.shape[1]] = local
    parts = [torch.empty_like(padded) for _ in slices]
    dist.all_gather(parts, padded, group=parallel.dp)
    return torch.cat([p[:, : s.stop - s.start] for p, s in zip(parts, slices, strict=True)], dim=1)


def _sum_metrics(
    results: list[dict[str, float]], parallel: ParallelGroups, device: torch.device
) -> dict[str, float]:
    """Sum each metric over micro-batches, then over DP; identical on every rank."""
    keys = sorted({k for r in results for k in r})
    shared: list = [None] * dist.get_world_size()
    dist.all_gather_object(shared, keys)  # ranks with no micro-batch still know the keys
    keys = sorted({k for ks in shared for k in ks})
    if not keys:
        return {}
    totals = torch.tensor(
        [sum(float(r.get(k, 0.0)) for r in results) for k in keys],
        dtype=torch.float64,
        device=device,
    )
    totals = broadcast_from_last_stage(totals, parallel)
    if parallel.dp_size > 1:
        dist.all_reduce(totals, group=parallel.dp)
    return dict(zip(keys, totals.tolist(), strict=True))
