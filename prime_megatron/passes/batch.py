"""Rollout groups -> padded training tensors.

Layout: each sample is ``prompt + response`` right-padded to the batch's length S. Token
t's logits predict token t+1, so every per-token quantity lives on the S-1 "label"
positions: ``labels[:, t] = tokens[:, t+1]``, and ``mask[:, t] = 1`` where that label is a
response token. Right padding needs no attention mask beyond causal: pads only follow the
real tokens. Prompt and padding labels are ``IGNORE`` so kernels skip them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor

IGNORE = -100


@dataclass
class Group:
    """One prompt and its K samples; plain python data so it can sit in checkpoints."""

    prompt_ids: list[int]
    response_ids: list[list[int]]
    rollout_logprobs: list[list[float]]
    truncated: list[bool]
    outcome: list[float]
    row_index: int
    weight_version: int

    def to_state(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class SampleBatch:
    tokens: Tensor  # [N, S] long
    labels: Tensor  # [N, S-1] long, IGNORE outside responses
    mask: Tensor  # [N, S-1] float, 1 on response labels
    rollout_logp: Tensor  # [N, S-1] float, the sampler's log-probs (0 off-mask)
    outcome: Tensor  # [N] float
    group: Tensor  # [N] long, prompt index within the batch
    truncated: Tensor  # [N] bool
    # Per-sample tensors the losses need (old log-probs, advantages...), sliced along.
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.tokens.shape[0]

    def select(self, index: Tensor | slice) -> SampleBatch:
        return self._map(lambda t: t[index])

    def to(self, device: torch.device) -> SampleBatch:
        return self._map(lambda t: t.to(device))

    def _map(self, fn: Callable[[Tensor], Tensor]) -> SampleBatch:
        mapped = {f.name: fn(getattr(self, f.name)) for f in fields(self) if f.name != "extras"}
        return SampleBatch(**mapped, extras={k: fn(v) for k, v in self.extras.items()})

    def to_state(self) -> dict[str, Any]:
        """Its tensors by field name (``extras`` as a dict of them), for ``torch.save``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SampleBatch:
        return cls(**state)

    def with_extras(self, **tensors: Tensor) -> SampleBatch:
        return replace(self, extras={**self.extras, **tensors})

    def lengths(self) -> Tensor:
        """[N] long: the tokens each row needs, up to and including its last response
        label (1 for a row without one). Columns past it hold only padding and ignored
        labels, so dropping them changes no log-prob a row's response gets."""
        positions = torch.arange(1, self.mask.shape[1] + 1, device=self.mask.device)
        return (self.mask.bool() * positions).amax(dim=1) + 1

    def trimmed(self, width: int) -> SampleBatch:
        """The first ``width`` token columns (``width - 1`` label columns) of every row;
        extras laid out per label ([N, S-1]) are cut alike, per-sample ones kept."""
        labels = self.tokens.shape[1] - 1
        mapped = {
            f.name: _cut(getattr(self, f.name), labels, width - 1)
            for f in fields(self)
            if f.name not in ("tokens", "extras")
        }
        extras = {k: _cut(v, labels, width - 1) for k, v in self.extras.items()}
        return SampleBatch(tokens=self.tokens[:, :width], **mapped, extras=extras)

    @classmethod
    def concat(cls, batches: Sequence[SampleBatch], pad_id: int) -> SampleBatch:
        """The rows of ``batches`` in order, right-padded to the widest; group ids renumbered
        so that groups of different batches stay apart. All must carry the same extras."""
        keys = set(batches[0].extras)
        if any(set(b.extras) != keys for b in batches):
            raise ValueError(
                f"SampleBatch.concat: extras differ: {[sorted(b.extras) for b in batches]}"
            )
        width = max(b.tokens.shape[1] for b in batches)
        offsets = torch.tensor([0] + [int(b.group.max()) + 1 for b in batches[:-1]]).cumsum(0)
        return cls.cat_rows([
            replace(b._widened(width, pad_id), group=b.group + int(offset))
            for b, offset in zip(batches, offsets, strict=True)
        ])  # fmt: skip

    @classmethod
    def cat_rows(cls, batches: Sequence[SampleBatch]) -> SampleBatch:
        """The rows of same-width ``batches`` with the same extras, in order, as they are."""
        fill = [f.name for f in fields(cls) if f.name != "extras"]
        return cls(
            **{name: torch.cat([getattr(b, name) for b in batches]) for name in fill},
            extras={k: torch.cat([b.extras[k] for b in batches]) for k in batches[0].extras},
        )

    def _widened(self, width: int, pad_id: int) -> SampleBatch:
        """Right-padded to ``width`` token columns: padding tokens, ignored labels, zeros."""
        extra = width - self.tokens.shape[1]
        if extra == 0:
            return self
        labels = self.tokens.shape[1] - 1

        def pad(t: Tensor, value: float) -> Tensor:
            if t.dim() != 2 or t.shape[1] != labels:
                return t  # per sample
            return torch.nn.functional.pad(t, (0, extra), value=value)

        return SampleBatch(
            tokens=torch.nn.functional.pad(self.tokens, (0, extra), value=pad_id),
            labels=pad(self.labels, IGNORE),
            mask=pad(self.mask, 0.0),
            rollout_logp=pad(self.rollout_logp, 0.0),
            outcome=self.outcome,
            group=self.group,
            truncated=self.truncated,
            extras={k: pad(v, 0.0) for k, v in self.extras.items()},
        )

    @classmethod
    def from_groups(cls, groups: list[Group], pad_id: int, pad_to_multiple: int = 8) -> SampleBatch:
        rows = [
            (g.prompt_ids, response, logp)
            for g in groups
            for response, logp in zip(g.response_ids, g.rollout_logprobs, strict=True)
        ]
        longest = max(len(p) + len(r) for p, r, _ in rows)
        s = -(-longest // pad_to_multiple) * pad_to_multiple
        n = len(rows)
        tokens = torch.full((n, s), pad_id, dtype=torch.long)
        mask = torch.zeros(n, s - 1)
        rollout_logp = torch.zeros(n, s - 1)
        for i, (prompt, response, logp) in enumerate(rows):
            p, r = len(prompt), len(response)
            tokens[i, : p + r] = torch.tensor(prompt + response, dtype=torch.long)
            mask[i, p - 1 : p - 1 + r] = 1.0
            rollout_logp[i, p - 1 : p - 1 + r] = torch.tensor(logp, dtype=torch.float)
        labels = torch.where(mask.bool(), tokens[:, 1:], IGNORE)
        k = [len(g.response_ids) for g in groups]
        return cls(
            tokens=tokens,
            labels=labels,
            mask=mask,
            rollout_logp=rollout_logp,
            outcome=torch.tensor([o for g in groups for o in g.outcome], dtype=torch.float),
            group=torch.repeat_interleave(torch.arange(len(groups)), torch.tensor(k)),
            truncated=torch.tensor([t for g in groups for t in g.truncated], dtype=torch.bool),
        )

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[tuple[Sequence[int], Sequence[int]]], pad_id: int
    ) -> SampleBatch:
        """One sample per (prompt, response), each its own group, without rollout data
        (SFT examples, the weight-sync check's responses)."""
        groups = [
            Group(list(p), [list(r)], [[0.0] * len(r)], [False], [0.0], 0, 0) for p, r in pairs
        ]
        return cls.from_groups(groups, pad_id)


def _cut(t: Tensor, labels: int, keep: int) -> Tensor:
    """``t`` cut to ``keep`` label columns if it is laid out per label, else ``t``."""
    return t[:, :keep] if t.dim() == 2 and t.shape[1] == labels else t
