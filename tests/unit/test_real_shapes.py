"""Real model configs (prime_megatron/models/real_shapes.py) and their reduced copies."""

import pytest

from prime_megatron.models.arch import ModelArch
from prime_megatron.models.hf_factory import PRESETS, hf_config
from prime_megatron.models.real_shapes import (
    REAL_MODELS,
    real_config,
    reduced,
    tensor_shape,
    transformers_config,
)
from tests.real_shape_inputs import TEST_SHAPES

# What each published model is: (vocab, tied, q/k/v bias, rope type, rope factor, theta)
REAL = {
    "qwen2.5-0.5b-instruct": (151936, True, True, None, 1.0, 1e6),
    "qwen2.5-math-7b": (152064, False, True, None, 1.0, 1e4),
    "llama-3.2-1b": (128256, True, False, "llama3", 32.0, 5e5),
}

# (hidden, layers, heads, KV heads, head_dim, ffn)
REAL_SHAPES = {
    "qwen2.5-0.5b-instruct": (896, 24, 14, 2, 64, 4864),
    "qwen2.5-math-7b": (3584, 28, 28, 4, 128, 18944),
    "llama-3.2-1b": (2048, 16, 32, 8, 64, 8192),
}


def _identity(arch: ModelArch) -> tuple:
    return (arch.vocab_size, arch.tie_word_embeddings, arch.qkv_bias, arch.rope_scaling,
            arch.rope_scaling_factor, arch.rope_theta)  # fmt: skip


@pytest.mark.parametrize("name", REAL_MODELS)
def test_real_configs_are_the_published_models(name):
    arch = ModelArch.from_hf_config(real_config(name))
    assert _identity(arch) == REAL[name]
    shape = (arch.hidden_size, arch.num_layers, arch.num_attention_heads,
             arch.num_query_groups, arch.head_dim, arch.ffn_hidden_size)  # fmt: skip
    assert shape == REAL_SHAPES[name]


@pytest.mark.parametrize("name", REAL_MODELS)
def test_reduced_keeps_vocab_tie_bias_rope_and_token_ids(name):
    real = real_config(name)
    for kwargs in ({}, TEST_SHAPES[name]):
        config = reduced(name, **kwargs)
        arch = ModelArch.from_hf_config(transformers_config(config))  # via transformers
        assert _identity(arch) == REAL[name] and arch.num_layers == 2
        assert arch.head_dim == ModelArch.from_hf_config(real).head_dim
        assert arch.norm_eps == real["rms_norm_eps"]
        for key in ("bos_token_id", "eos_token_id", "max_position_embeddings"):
            assert config[key] == real[key]


def test_narrowing_scales_heads_and_ffn_with_the_width():
    llama = reduced("llama-3.2-1b", num_layers=1, hidden_size=512)
    assert (llama["num_attention_heads"], llama["num_key_value_heads"]) == (8, 2)  # real 4:1
    assert llama["intermediate_size"] == 2048  # 8192 x 512 / 2048
    qwen = reduced("qwen2.5-0.5b-instruct", hidden_size=256, num_key_value_heads=2)
    assert (qwen["num_attention_heads"], qwen["intermediate_size"]) == (4, 1408)  # 1390 up


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_layers=0), "num_layers=0"),
        (dict(num_layers=25), "1..24"),
        (dict(hidden_size=100), "multiple of head_dim=64"),
        (dict(hidden_size=256), "pass num_key_value_heads"),  # 4 heads, real ratio 7:1
        (dict(hidden_size=256, num_key_value_heads=3), "must divide 4 heads"),
        (dict(num_key_value_heads=2), "only with hidden_size"),
    ],
)
def test_reduced_refuses_inconsistent_shapes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        reduced("qwen2.5-0.5b-instruct", **kwargs)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="'gpt2'.*known"):
        real_config("gpt2")


def test_presets_shape_comes_from_the_real_config():
    assert PRESETS["qwen2.5-0.5b"] == tensor_shape("qwen2.5-0.5b-instruct")
    # the benchmarks' call: positions given separately, the preset fixes every shape field
    arch = ModelArch.from_hf_config(
        hf_config("Qwen2ForCausalLM", max_position_embeddings=4096, **PRESETS["qwen2.5-0.5b"])
    )
    real = ModelArch.from_hf_config(real_config("qwen2.5-0.5b-instruct"))
    assert (arch.hidden_size, arch.head_dim, arch.vocab_size, arch.num_query_groups) == (
        real.hidden_size, real.head_dim, real.vocab_size, real.num_query_groups,
    )  # fmt: skip
