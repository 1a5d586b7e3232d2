"""Forward passes through a (possibly pipelined, tensor-parallel) GPTModel.

All passes go through Megatron's ``get_forward_backward_func`` schedule so PP works the same
way for inference-only passes (log-probs, greedy decoding, parity checks) as for training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist

from prime_megatron.distributed.init import ParallelGroups


def causal_padding_mask(key_mask: torch.Tensor) -> torch.Tensor:
    """Megatron attention mask for left/right-padded rows.

    key_mask: [b, s] bool, True on real tokens. Returns [b, 1, s, s] bool, True = masked
    (future positions and padding keys). Padding query rows attend to themselves only, so
    their (ignored) outputs stay finite.
    """
    s = key_mask.shape[1]
    future = torch.ones(s, s, dtype=torch.bool, device=key_mask.device).triu(1)
    masked = future[None] | ~key_mask[:, None, :]
    eye = torch.eye(s, dtype=torch.bool, device=key_mask.device)[None]
    masked = masked & ~(eye & ~key_mask[:, :, None])
    return masked[:, None]


def position_ids_for(key_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only (left padding does not shift RoPE)."""
    return (key_mask.long().cumsum(-1) - 1).clamp(min=0)


StepFn = Callable[[torch.Tensor, dict[str, torch.Tensor]], tuple[torch.Tensor | None, Any]]


def run_forward(
    model: torch.nn.Module | Sequence[torch.nn.Module],
    parallel: ParallelGroups,
    micro_batches: Sequence[dict[str, torch.Tensor]],
    step_fn: StepFn,
    forward_only: bool = True,
) -> list[Any]:
    """Run ``micro_batches`` through the pipeline schedule.

    Each micro-batch holds ``tokens`` [b, s] and optionally ``key_mask`` [b, s] (bool; without
    it rows are treated as unpadded, or right-padded, which causal attention makes harmless)
    or, for packed rows, its own ``position_ids`` [b, s] and ``attention_mask``
    [b, 1, s, s] (bool, True = masked).
    On the last stage ``step_fn(logits_shard [b, s, V/tp], micro_batch)`` returns
    ``(loss, result)``; results are returned in order (other stages return ``[]``). With
    ``forward_only=False`` each scalar ``loss`` is back-propagated as is: gradients add up
    over micro-batches, so losses must already carry their global normalisation.
    """
    from megatron.core.pipeline_parallel import get_forward_backward_func

    chunks = list(model) if isinstance(model, (list, tuple)) else [model]
    # Losses arrive normalised; stop Megatron from dividing by tokens or micro-batch count.
    for chunk in chunks:
        chunk.config.calculate_per_token_loss = True
    shape = micro_batches[0]["tokens"].shape
    batches = iter(micro_batches)

    def forward_step(data_iterator, chunk):
        mb = next(data_iterator)
        key_mask = mb.get("key_mask")
        if "attention_mask" in mb:
            positions, mask = mb["position_ids"], mb["attention_mask"]
        elif key_mask is None:
            b, s = mb["tokens"].shape  # micro-batches may differ in width without PP
            positions = torch.arange(s, device=mb["tokens"].device).expand(b, -1)
            mask = None
        else:
            positions, mask = position_ids_for(key_mask), causal_padding_mask(key_mask)
        output = chunk(mb["tokens"], positions, mask)

        def finish(out: torch.Tensor, non_loss_data: bool = False):
            loss, result = step_fn(out, mb)
            if loss is None:
                loss = out.new_zeros(())
            return loss, torch.ones((), dtype=torch.int), {"result": result}

        return output, finish

    fb = get_forward_backward_func(pp_size=parallel.pp_size, vp_size=None)
    outputs = fb(
        forward_step_func=forward_step,
        data_iterator=batches if len(chunks) == 1 else [batches] * len(chunks),
        model=chunks if len(chunks) > 1 else chunks[0],
        num_microbatches=len(micro_batches),
        seq_length=shape[1],
        micro_batch_size=shape[0],
        forward_only=forward_only,
    )
    return [o["result"] for o in outputs] if parallel.is_last_stage else []


@contextlib.contextmanager
def last_position_logits(model: torch.nn.Module | Sequence[torch.nn.Module]) -> Iterator[None]:
    """Within it, the model's output layer computes the last position's logits only
    ([b, 1, V/tp]). A greedy decoding step needs no others, and at a 150k-token vocabulary
    the output layer over every position costs more than the whole decoder."""
    chunks = list(model) if isinstance(model, (list, tuple)) else [model]
    layers = [m for c in chunks for n, m in c.named_modules() if n.endswith("output_layer")]

    def keep_last(_module, args, kwargs):
        return (args[0][-1:], *args[1:]), kwargs  # hidden states are [s, b, h]

    handles = [layer.register_forward_pre_hook(keep_last, with_kwargs=True) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def gather_vocab(
    logits_shard: torch.Tensor, parallel: ParallelGroups, vocab_size: int
) -> torch.Tensor:
    """[..., V/tp] vocab-parallel logits -> [..., vocab_size] (padding rows dropped)."""
    if parallel.tp_size > 1:
        parts = [torch.empty_like(logits_shard) for _ in range(parallel.tp_size)]
        dist.all_gather(parts, logits_shard.contiguous(), group=parallel.tp)
        logits_shard = torch.cat(parts, dim=-1)
    return logits_shard[..., :vocab_size]


def full_logits(
    model,
    parallel: ParallelGroups,
    tokens: torch.Tensor,
    vocab_size: int,
    micro_batch_size: int = 0,
) -> torch.Tensor | None:
    """Full-vocab fp32 logits [b, s, vocab_size] on the last stage (``None`` elsewhere)."""
    mbs = micro_batch_size or tokens.shape[0]
    micro = [{"tokens": t} for t in tokens.split(mbs)]
    with torch.no_grad():
        outs = run_forward(
            model,
            parallel,
            micro,
            lambda out, mb: (None, gather_vocab(out.float(), parallel, vocab_size)),
        )
    return torch.cat(outs) if outs else None
