"""How one rank's rows are cut into forward/backward micro-batches, and sequence packing.

Three ways, all giving the same per-token log-probs (the tests hold them to it):

* by rows (``rows`` per micro-batch): rows sorted by length, each micro-batch trimmed to
  its longest row;
* by a token budget (``max_tokens``): rows sorted by length, as many per micro-batch as fit
  ``max_tokens`` padded tokens, so short answers go many at a time and a long one alone;
* packed (``pack``): rows concatenated into one sequence of at most ``max_tokens`` tokens,
  first-fit by decreasing length, with positions restarting at each row and an attention
  mask that keeps every row to its own tokens (block-diagonal causal): no padding at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from prime_megatron.passes.batch import IGNORE, SampleBatch


@dataclass(frozen=True)
class MicroBatching:
    """``rows`` per micro-batch, or (``max_tokens`` > 0) a token budget that replaces it;
    ``pack`` (with a budget) concatenates each micro-batch's rows into one sequence."""

    rows: int
    max_tokens: int = 0
    pack: bool = False
    pad_to_multiple: int = 8

    def __post_init__(self) -> None:
        if self.rows < 1 or self.max_tokens < 0 or (self.pack and not self.max_tokens):
            raise ValueError(f"invalid micro-batching {self}: rows >= 1, max_tokens >= 0, "
                             "and pack needs max_tokens")  # fmt: skip


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def ragged_micro_batches(
    lengths: Tensor, micro_batch_size: int, max_width: int, pad_to_multiple: int = 8
) -> list[tuple[Tensor, int]]:
    """Rows sorted by length (stable), ``micro_batch_size`` at a time, each group with the
    token width its longest row needs rounded up to ``pad_to_multiple`` (at most
    ``max_width``, the batch's own).

    lengths: [N] long (``SampleBatch.lengths``). Returns (row indices [b], width) per
    micro-batch: short rows no longer pay for the longest row of the whole batch.
    """
    order = torch.argsort(lengths, stable=True)
    out = []
    for rows in order.split(micro_batch_size):
        longest = int(lengths[rows].max())
        out.append((rows, min(max_width, _round_up(longest, pad_to_multiple))))
    return out


def token_budget_micro_batches(
    lengths: Tensor, max_tokens: int, max_width: int, pad_to_multiple: int = 8
) -> list[tuple[Tensor, int]]:
    """Rows sorted by length, grouped so that rows x width (the padded tokens a micro-batch
    computes) stays within ``max_tokens``; a row longer than the budget goes alone.

    lengths: [N] long. Returns (row indices [b], width) per micro-batch, widths as in
    ``ragged_micro_batches``."""
    order = torch.argsort(lengths, stable=True).tolist()
    out: list[tuple[Tensor, int]] = []
    rows: list[int] = []
    for i in order:
        width = min(max_width, _round_up(int(lengths[i]), pad_to_multiple))
        if rows and (len(rows) + 1) * width > max_tokens:
            out.append(_group(rows, lengths, max_width, pad_to_multiple))
            rows = []
        rows.append(i)
    if rows:
        out.append(_group(rows, lengths, max_width, pad_to_multiple))
    return out


def plan_micro_batches(
    lengths: Tensor, how: MicroBatching, max_width: int
) -> list[tuple[Tensor, int]]:
    """(row indices, width) per padded micro-batch: by token budget or by rows."""
    if how.max_tokens:
        return token_budget_micro_batches(lengths, how.max_tokens, max_width, how.pad_to_multiple)
    return ragged_micro_batches(lengths, how.rows, max_width, how.pad_to_multiple)


def _group(rows: list[int], lengths: Tensor, max_width: int, multiple: int):
    index = torch.tensor(rows, dtype=torch.long, device=lengths.device)
    return index, min(max_width, _round_up(int(lengths[index].max()), multiple))


def pack_bins(lengths: Tensor, max_tokens: int) -> list[Tensor]:
    """Row indices per packed sequence: first fit by decreasing length into bins of
    ``max_tokens`` tokens (a longer row gets a bin of its own). lengths: [N] long."""
    order = torch.argsort(lengths, descending=True, stable=True).tolist()
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        need = int(lengths[i])
        slot = next((b for b, free in enumerate(room) if free >= need), None)
        if slot is None:
            bins.append([])
            room.append(max_tokens)
            slot = len(bins) - 1
        bins[slot].append(i)
        room[slot] -= need
    return [torch.tensor(b, dtype=torch.long, device=lengths.device) for b in bins]


@dataclass
class Packed:
    """Rows of a micro-batch as one sequence: ``tokens`` [1, L], ``labels`` [1, L-1]
    (IGNORE across row boundaries), ``position_ids`` [1, L] restarting at 0 per row,
    ``attention_mask`` [1, 1, L, L] bool (True = masked: other rows and the future) and
    each row's ``starts``/``lengths`` [b] in the sequence."""

    tokens: Tensor
    labels: Tensor
    position_ids: Tensor
    attention_mask: Tensor
    starts: Tensor
    lengths: Tensor


def pack_rows(rows: SampleBatch, lengths: Tensor) -> Packed:
    """``rows`` [b, S] (lengths [b]: the tokens each needs) packed into one sequence."""
    n = [int(x) for x in lengths]
    tokens = torch.cat([rows.tokens[i, :k] for i, k in enumerate(n)])
    ignore = rows.labels.new_full((1,), IGNORE)
    # Each row's labels, then IGNORE where its last token would predict the next row's first.
    labels = torch.cat([t for i, k in enumerate(n) for t in (rows.labels[i, : k - 1], ignore)])
    device = tokens.device
    segment = torch.repeat_interleave(torch.arange(len(n), device=device), lengths.to(device))
    starts = torch.cumsum(lengths, 0) - lengths
    positions = torch.arange(tokens.numel(), device=device) - starts.to(device)[segment]
    size = tokens.numel()
    future = torch.ones(size, size, dtype=torch.bool, device=device).triu(1)
    mask = future | (segment[:, None] != segment[None, :])
    return Packed(tokens[None], labels[None, :-1], positions[None], mask[None, None], starts,
                  lengths)  # fmt: skip


def unpack(values: Tensor, packed: Packed, width: int) -> Tensor:
    """Per-label values of a packed sequence [1, L-1] -> per row [b, width - 1] (0 past a
    row's own labels), the layout of the rows before packing."""
    out = values.new_zeros(len(packed.lengths), width - 1)
    for i, (start, k) in enumerate(zip(packed.starts.tolist(), packed.lengths.tolist(),
                                       strict=True)):  # fmt: skip
        out[i, : k - 1] = values[0, start : start + k - 1]
    return out
