"""HF <-> Megatron weight mapping: the one place that knows names and layouts.

A mapping is a list of ``Rule``s (``rules.py``), one per Megatron parameter of the full
model. Conversion tools apply the rules to whole state dicts; the vLLM weight sync applies
them tensor by tensor (``Rule.to_hf``) while streaming. Each architecture's rule table lives
in its own module (``llama_family.py``); ``RULE_TABLES`` names the table of each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from prime_megatron.checkpoint.llama_family import llama_family_rules
from prime_megatron.checkpoint.rules import MappingError, Rule
from prime_megatron.models.arch import ModelArch

# HF architecture name -> its rule table: function(arch, layer_spec_kind) -> rules.
RULE_TABLES: dict[str, Callable[[ModelArch, str], list[Rule]]] = {
    "LlamaForCausalLM": llama_family_rules,
    "Qwen2ForCausalLM": llama_family_rules,
}


def rules_for(arch: ModelArch, spec_kind: str = "local") -> list[Rule]:
    """All rules of the full model, in layer order (embedding first, output last)."""
    return RULE_TABLES[arch.architecture](arch, spec_kind)


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
