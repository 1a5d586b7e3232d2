"""Rule table for Llama-layout decoders: Llama 2/3 and Qwen2/2.5 (which adds q/k/v biases).

Megatron names differ between layer specs only in where the pre-attention / pre-MLP norm
weights live: separate ``input_layernorm`` / ``pre_mlp_layernorm`` modules in the local
spec, fused into ``linear_qkv`` / ``linear_fc1`` as ``layer_norm_weight`` in the TE spec.
"""

from __future__ import annotations

from prime_megatron.checkpoint.rules import Rule
from prime_megatron.models.arch import ModelArch

_NORM_NAMES = {
    "local": ("input_layernorm.weight", "pre_mlp_layernorm.weight"),
    "te": (
        "self_attention.linear_qkv.layer_norm_weight",
        "mlp.linear_fc1.layer_norm_weight",
    ),
}


def _layer_rules(arch: ModelArch, spec_kind: str, i: int) -> list[Rule]:
    meg, hf = f"decoder.layers.{i}.", f"model.layers.{i}."
    attn_norm, mlp_norm = _NORM_NAMES[spec_kind]
    qkv = tuple(f"{hf}self_attn.{p}_proj.weight" for p in "qkv")
    rules = [
        Rule(meg + attn_norm, (hf + "input_layernorm.weight",), "copy"),
        Rule(meg + "self_attention.linear_qkv.weight", qkv, "qkv"),
    ]
    if arch.qkv_bias:
        qkv_bias = tuple(f"{hf}self_attn.{p}_proj.bias" for p in "qkv")
        rules.append(Rule(meg + "self_attention.linear_qkv.bias", qkv_bias, "qkv"))
    gate_up = (hf + "mlp.gate_proj.weight", hf + "mlp.up_proj.weight")
    rules += [
        Rule(meg + "self_attention.linear_proj.weight", (hf + "self_attn.o_proj.weight",), "copy"),
        Rule(meg + mlp_norm, (hf + "post_attention_layernorm.weight",), "copy"),
        Rule(meg + "mlp.linear_fc1.weight", gate_up, "gate_up"),
        Rule(meg + "mlp.linear_fc2.weight", (hf + "mlp.down_proj.weight",), "copy"),
    ]
    return rules


def llama_family_rules(arch: ModelArch, spec_kind: str) -> list[Rule]:
    rules = [Rule("embedding.word_embeddings.weight", ("model.embed_tokens.weight",), "vocab")]
    for i in range(arch.num_layers):
        rules += _layer_rules(arch, spec_kind, i)
    rules.append(Rule("decoder.final_layernorm.weight", ("model.norm.weight",), "copy"))
    if not arch.tie_word_embeddings:
        rules.append(Rule("output_layer.weight", ("lm_head.weight",), "vocab"))
    return rules
