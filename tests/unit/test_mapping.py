import pytest
import torch

from prime_megatron.checkpoint.mapping import hf_to_megatron, megatron_to_hf, rules_for
from prime_megatron.checkpoint.rules import MappingError, merge_qkv, split_qkv
from prime_megatron.models.arch import ModelArch
from prime_megatron.models.hf_factory import hf_config, random_hf_model


def _arch(**kw):
    return ModelArch.from_hf_config(hf_config(**kw))


def test_qkv_grouping_by_hand():
    # 4 q heads, 2 kv groups, head_dim 1: rows q0 q1 k0 v0 | q2 q3 k1 v1
    arch = _arch(hidden_size=4, num_attention_heads=4, num_key_value_heads=2, head_dim=1)
    q = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    k = torch.tensor([[10.0], [11.0]])
    v = torch.tensor([[20.0], [21.0]])
    fused = merge_qkv(q, k, v, arch=arch)
    assert fused.flatten().tolist() == [0, 1, 10, 20, 2, 3, 11, 21]
    for a, b in zip(split_qkv(fused, arch), (q, k, v), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("architecture", ["Qwen2ForCausalLM", "LlamaForCausalLM"])
@pytest.mark.parametrize("tied", [False, True])
def test_state_dict_round_trip_is_bit_exact(architecture, tied):
    cfg = hf_config(architecture, tie_word_embeddings=tied, num_hidden_layers=2)
    arch = ModelArch.from_hf_config(cfg)
    hf_sd = random_hf_model(cfg).state_dict()
    if tied:
        hf_sd.pop("lm_head.weight", None)
    meg = hf_to_megatron(hf_sd, arch, padded_vocab=128)
    assert meg["embedding.word_embeddings.weight"].shape[0] == 128
    assert torch.count_nonzero(meg["embedding.word_embeddings.weight"][arch.vocab_size :]) == 0
    assert ("output_layer.weight" in meg) == (not tied)
    back = megatron_to_hf(meg, arch)
    assert set(back) == set(hf_sd)
    assert all(torch.equal(back[k], hf_sd[k]) for k in hf_sd)


def test_te_spec_names_norms_inside_linears():
    names = {r.megatron for r in rules_for(_arch(num_hidden_layers=1), "te")}
    assert "decoder.layers.0.self_attention.linear_qkv.layer_norm_weight" in names
    assert "decoder.layers.0.mlp.linear_fc1.layer_norm_weight" in names
    assert not any("input_layernorm" in n for n in names)


def test_missing_and_unexpected_keys_are_listed():
    cfg = hf_config(num_hidden_layers=1)
    arch = ModelArch.from_hf_config(cfg)
    sd = random_hf_model(cfg).state_dict()
    sd.pop("model.layers.0.mlp.up_proj.weight")
    sd["model.layers.7.mystery.weight"] = torch.zeros(1)
    with pytest.raises(MappingError, match="up_proj.*unexpected.*mystery"):
        hf_to_megatron(sd, arch, padded_vocab=128)


def test_qwen_without_biases_is_reported_missing():
    cfg = hf_config(num_hidden_layers=1)
    sd = {k: v for k, v in random_hf_model(cfg).state_dict().items() if not k.endswith("bias")}
    with pytest.raises(MappingError, match="q_proj.bias"):
        hf_to_megatron(sd, ModelArch.from_hf_config(cfg), padded_vocab=128)
