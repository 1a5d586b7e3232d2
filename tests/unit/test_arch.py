import pytest

from prime_megatron.models.arch import InvalidModelConfigError, ModelArch, UnsupportedModelError
from prime_megatron.models.builder import padded_vocab_size
from prime_megatron.models.hf_factory import hf_config


def test_qwen2_fields():
    arch = ModelArch.from_hf_config(hf_config("Qwen2ForCausalLM", rope_theta=1e6))
    assert arch.qkv_bias and not arch.tie_word_embeddings
    assert (arch.num_attention_heads, arch.num_query_groups, arch.head_dim) == (4, 2, 32)
    assert arch.rope_theta == 1e6 and arch.rope_scaling is None


def test_llama3_rope_scaling_and_tied_embeddings():
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
            "rope_theta": 500000.0}  # fmt: skip
    cfg = hf_config("LlamaForCausalLM", rope_parameters=rope, tie_word_embeddings=True)
    arch = ModelArch.from_hf_config(cfg)
    assert not arch.qkv_bias and arch.tie_word_embeddings
    assert (arch.rope_scaling, arch.rope_scaling_factor, arch.rope_theta) == ("llama3", 8.0, 5e5)


def test_dict_config_is_accepted():
    cfg = hf_config("LlamaForCausalLM").to_dict()
    assert ModelArch.from_hf_config(cfg).architecture == "LlamaForCausalLM"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"architectures": ["GPT2LMHeadModel"]}, "not supported"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"mlp_bias": True}, "mlp_bias"),
        ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}, "yarn"),
        ({"rope_parameters": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 2.0}},
         "low_freq_factor"),
    ],
)  # fmt: skip
def test_unsupported_features_are_named(change, message):
    cfg = {**hf_config("LlamaForCausalLM").to_dict(), **change}
    with pytest.raises(UnsupportedModelError, match=message):
        ModelArch.from_hf_config(cfg)


def test_llama_attention_bias_rejected_qwen_sliding_window_rejected():
    with pytest.raises(UnsupportedModelError, match="o_proj"):
        ModelArch.from_hf_config(
            {**hf_config("LlamaForCausalLM").to_dict(), "attention_bias": True}
        )
    with pytest.raises(UnsupportedModelError, match="sliding"):
        ModelArch.from_hf_config({**hf_config().to_dict(), "use_sliding_window": True})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden_size": "abc"}, "hidden_size='abc' is invalid: expected a positive integer"),
        ({"num_attention_heads": 0}, "num_attention_heads=0 is invalid"),
        ({"vocab_size": 61.0}, "vocab_size=61.0 is invalid"),
        ({"num_hidden_layers": True}, "num_hidden_layers=True is invalid"),
        ({"head_dim": [32]}, r"head_dim=\[32\] is invalid"),
        ({"rms_norm_eps": "1e-6"}, "rms_norm_eps='1e-6' is invalid: expected a finite number"),
        ({"tie_word_embeddings": "no"}, "tie_word_embeddings='no' is invalid: expected true"),
        ({"rope_parameters": "llama3"}, "rope_parameters='llama3' is invalid: expected an object"),
        ({"rope_parameters": {"rope_type": "linear", "factor": "x"}}, "rope factor='x'"),
        ({"architectures": "LlamaForCausalLM"}, "expected a list of class names"),
        ({"intermediate_size": None}, "'intermediate_size' is missing"),
    ],
)
def test_malformed_fields_are_named(change, message):
    cfg = {**hf_config("LlamaForCausalLM").to_dict(), **change}
    with pytest.raises(InvalidModelConfigError, match=message):
        ModelArch.from_hf_config(cfg)


@pytest.mark.parametrize("key", ["vocab_size", "hidden_size", "num_attention_heads"])
def test_missing_fields_are_named(key):
    cfg = hf_config("LlamaForCausalLM").to_dict()
    del cfg[key]
    with pytest.raises(InvalidModelConfigError, match=f"config field '{key}' is missing"):
        ModelArch.from_hf_config(cfg)


@pytest.mark.parametrize("config", [[1, 2], "Qwen2ForCausalLM", None])
def test_config_that_is_not_an_object_is_rejected(config):
    with pytest.raises(InvalidModelConfigError, match="must be a JSON object"):
        ModelArch.from_hf_config(config)


@pytest.mark.parametrize(
    "tp, pp, message",
    [(3, 1, "num_attention_heads=4"), (4, 1, "query groups"), (1, 3, "num_hidden_layers=4")],
)
def test_layout_that_does_not_divide_is_rejected(tp, pp, message):
    arch = ModelArch.from_hf_config(hf_config())
    with pytest.raises(ValueError, match=message):
        arch.check_layout(tp, pp)


def test_vocab_padding():
    assert padded_vocab_size(61, 1) == 128
    assert padded_vocab_size(128, 2) == 256
    assert padded_vocab_size(151936, 1) == 151936
    assert padded_vocab_size(151936, 8) == 152576


def test_loading_at_a_tp_that_does_not_divide_the_padded_vocab_is_rejected():
    from types import SimpleNamespace

    from prime_megatron.models.builder import build_gpt_model

    arch = ModelArch.from_hf_config(
        hf_config(num_attention_heads=6, num_key_value_heads=6, intermediate_size=384)
    )
    parallel = SimpleNamespace(tp_size=3, pp_size=1)  # never reaches Megatron
    with pytest.raises(ValueError, match="re-convert the checkpoint with --tp 3"):
        build_gpt_model(arch, parallel, padded_vocab=256)
