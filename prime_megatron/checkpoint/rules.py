"""One HF <-> Megatron weight correspondence (``Rule``) and the layout transforms it applies.

A rule names one Megatron parameter of the *full* (TP-gathered, all-stages) model and the
HF tensors it corresponds to, and converts between them. Layouts (Megatron local/TE spec,
verified by logits parity and vLLM greedy match):

* ``qkv``: ``linear_qkv`` rows are grouped per KV group: for each group g, the q rows of its
  ``heads/groups`` heads, then k_g, then v_g (``head_dim`` rows each). Biases likewise.
* ``gate_up``: ``linear_fc1`` = [gate_proj; up_proj].
* ``vocab``: embedding / output rows padded up to the padded vocab size with zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from prime_megatron.models.arch import ModelArch


class MappingError(ValueError):
    """A state dict does not match the architecture: missing/extra keys or wrong shapes."""


@dataclass(frozen=True)
class Rule:
    megatron: str
    hf: tuple[str, ...]
    kind: str  # "copy" | "qkv" | "gate_up" | "vocab"

    def to_hf(self, tensor: torch.Tensor, arch: ModelArch) -> dict[str, torch.Tensor]:
        """Full Megatron tensor -> its HF tensors (views where possible; no vocab padding)."""
        if self.kind == "copy":
            return {self.hf[0]: tensor}
        if self.kind == "vocab":
            return {self.hf[0]: tensor[: arch.vocab_size]}
        if self.kind == "gate_up":
            gate, up = tensor.chunk(2, dim=0)
            return dict(zip(self.hf, (gate, up), strict=True))
        if self.kind == "qkv":
            return dict(zip(self.hf, split_qkv(tensor, arch), strict=True))
        raise AssertionError(self.kind)

    def to_megatron(
        self, hf: dict[str, torch.Tensor], arch: ModelArch, padded_vocab: int
    ) -> torch.Tensor:
        """HF tensors of this rule -> the full Megatron tensor."""
        parts = [hf[name] for name in self.hf]
        if self.kind == "copy":
            return parts[0]
        if self.kind == "vocab":
            return pad_vocab(parts[0], padded_vocab)
        if self.kind == "gate_up":
            return torch.cat(parts, dim=0)
        if self.kind == "qkv":
            return merge_qkv(*parts, arch=arch)
        raise AssertionError(self.kind)


def _group_view(t: torch.Tensor, groups: int) -> torch.Tensor:
    return t.reshape(groups, -1, *t.shape[1:])


def merge_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, arch: ModelArch) -> torch.Tensor:
    """HF q [H*d, ...], k/v [G*d, ...] -> Megatron grouped [(H + 2G)*d, ...]."""
    g = arch.num_query_groups
    fused = torch.cat([_group_view(q, g), _group_view(k, g), _group_view(v, g)], dim=1)
    return fused.reshape(-1, *q.shape[1:])


def split_qkv(fused: torch.Tensor, arch: ModelArch) -> tuple[torch.Tensor, ...]:
    """Inverse of ``merge_qkv``: Megatron grouped QKV -> (q, k, v) in HF layout."""
    g, d = arch.num_query_groups, arch.head_dim
    q_rows = arch.num_attention_heads // g * d
    grouped = _group_view(fused, g)
    q, k, v = grouped.split([q_rows, d, d], dim=1)
    return tuple(t.reshape(-1, *fused.shape[1:]) for t in (q, k, v))


def pad_vocab(t: torch.Tensor, padded_vocab: int) -> torch.Tensor:
    if t.shape[0] == padded_vocab:
        return t
    pad = t.new_zeros(padded_vocab - t.shape[0], *t.shape[1:])
    return torch.cat([t, pad], dim=0)
