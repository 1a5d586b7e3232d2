"""HF <-> Megatron weight mapping: the one place that knows names and layouts.

A mapping is a list of ``Rule``s, one per Megatron parameter of the *full* (TP-gathered,
all-stages) model, each naming the HF tensors it corresponds to and how their layouts
relate. Conversion tools apply the rules to whole state dicts; the vLLM weight sync applies
them tensor by tensor (``Rule.to_hf``) while streaming. Per-architecture rule tables live in
their own modules (``llama_family.py``) and register here.

Layouts (Megatron local/TE spec, verified by logits parity and vLLM greedy match):
* ``qkv``: ``linear_qkv`` rows are grouped per KV group: for each group g, the q rows of its
  ``heads/groups`` heads, then k_g, then v_g (``head_dim`` rows each). Biases likewise.
* ``gate_up``: ``linear_fc1`` = [gate_proj; up_proj].
* ``vocab``: embedding / output rows padded up to the padded vocab size with zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


# architecture name -> function(arch, layer_spec_kind) -> rules
_REGISTRY: dict[str, Callable[[ModelArch, str], list[Rule]]] = {}


def register(*architectures: str):
    def deco(fn: Callable[[ModelArch, str], list[Rule]]):
        for name in architectures:
            _REGISTRY[name] = fn
        return fn

    return deco


def rules_for(arch: ModelArch, spec_kind: str = "local") -> list[Rule]:
    """All rules of the full model, in layer order (embedding first, output last)."""
    from prime_megatron.checkpoint import llama_family  # noqa: F401  (registers)

    return _REGISTRY[arch.architecture](arch, spec_kind)


def hf_to_megatron(
    hf_sd: dict[str, torch.Tensor], arch: ModelArch, padded_vocab: int, spec_kind: str = "local"
) -> dict[str, torch.Tensor]:
    """Whole HF state dict -> whole Megatron state dict; ``MappingError`` on any mismatch."""
    rules = rules_for(arch, spec_kind)
    hf_sd = {k: v for k, v in hf_sd.items() if not _ignorable_hf_key(k, arch)}
    _check_keys(set(hf_sd), {n for r in rules for n in r.hf}, "HF checkpoint")
    return {r.megatron: r.to_megatron(hf_sd, arch, padded_vocab) for r in rules}


def _ignorable_hf_key(name: str, arch: ModelArch) -> bool:
    # Old exports carry RoPE buffers; tied models may still store a copy of the embedding.
    return name.endswith("rotary_emb.inv_freq") or (
        arch.tie_word_embeddings and name == "lm_head.weight"
    )


def megatron_to_hf(
    meg_sd: dict[str, torch.Tensor], arch: ModelArch, spec_kind: str = "local"
) -> dict[str, torch.Tensor]:
    """Whole Megatron state dict (no ``_extra_state``) -> whole HF state dict."""
    rules = rules_for(arch, spec_kind)
    _check_keys(set(meg_sd), {r.megatron for r in rules}, "Megatron checkpoint")
    out: dict[str, torch.Tensor] = {}
    for r in rules:
        out.update(r.to_hf(meg_sd[r.megatron], arch))
    return out


def check_shapes(
    tensors: dict[str, torch.Tensor], expected: dict[str, torch.Size], what: str
) -> None:
    _check_keys(set(tensors), set(expected), what)
    bad = [
        f"{k}: got {tuple(tensors[k].shape)}, expected {tuple(expected[k])}"
        for k in sorted(expected)
        if tuple(tensors[k].shape) != tuple(expected[k])
    ]
    if bad:
        raise MappingError(f"{what}: shape mismatch for {len(bad)} tensor(s): " + "; ".join(bad))


def _check_keys(have: set[str], want: set[str], what: str) -> None:
    missing, extra = sorted(want - have), sorted(have - want)
    if missing or extra:
        raise MappingError(
            f"{what} does not match the architecture: "
            f"missing {_abbrev(missing)}, unexpected {_abbrev(extra)}"
        )


def _abbrev(names: Iterable[str], limit: int = 6) -> str:
    names = list(names)
    if not names:
        return "none"
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return "[" + ", ".join(names[:limit]) + "]" + more
