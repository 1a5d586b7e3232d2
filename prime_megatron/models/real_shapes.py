"""The configs of the real models users bring, and reduced copies that keep what matters.

``real_config(name)`` is the model's ``config.json`` as published (transformers 4 layout,
which transformers 5 still reads: ``rope_theta`` / ``rope_scaling`` become
``rope_parameters``). ``reduced(name, ...)`` cuts depth (and optionally width) for tests
but keeps the real vocabulary size, tie setting, attention biases (implied by the
architecture), head_dim, RoPE base and scaling, norm epsilon and special-token ids: the
parts a conversion, a tokenizer or a vocab-parallel kernel can get wrong at 150k tokens.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

# Qwen2.5-Math-7B's config lives as a file because tools/plan.py reads it too.
HF_CONFIGS_DIR = Path(__file__).resolve().parents[2] / "tools" / "hf_configs"

_QWEN25_05B_INSTRUCT: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "attention_dropout": 0.0,
    "bos_token_id": 151643,  # <|endoftext|>
    "eos_token_id": 151645,  # <|im_end|>
    "hidden_act": "silu",
    "hidden_size": 896,
    "initializer_range": 0.02,
    "intermediate_size": 4864,
    "max_position_embeddings": 32768,
    "max_window_layers": 21,
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}

_LLAMA32_1B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,  # <|begin_of_text|>
    "eos_token_id": 128001,  # <|end_of_text|>
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 128256,
}

# name -> the config dict, or the file under HF_CONFIGS_DIR that holds it
_SOURCES: dict[str, dict[str, Any] | str] = {
    "qwen2.5-0.5b-instruct": _QWEN25_05B_INSTRUCT,
    "qwen2.5-math-7b": "qwen2.5-math-7b.json",
    "llama-3.2-1b": _LLAMA32_1B,
}
REAL_MODELS = tuple(_SOURCES)

# What fixes the model's tensor shapes (hf_factory.PRESETS, the benchmarks' models).
SHAPE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size",
                "tie_word_embeddings")  # fmt: skip

_FFN_MULTIPLE = 128  # a reduced intermediate_size stays divisible by any test TP


def real_config(name: str) -> dict[str, Any]:
    """A fresh copy of the published ``config.json`` of model ``name`` (see REAL_MODELS)."""
    if name not in _SOURCES:
        raise ValueError(f"unknown model {name!r}; known: {list(REAL_MODELS)}")
    source = _SOURCES[name]
    if isinstance(source, dict):
        return copy.deepcopy(source)
    path = HF_CONFIGS_DIR / source
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the {name} config ships with the source tree only")
    return json.loads(path.read_text())


def head_dim_of(config: dict[str, Any]) -> int:
    """Per-head width; Qwen2 configs leave it implicit (hidden / heads)."""
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def tensor_shape(name: str) -> dict[str, Any]:
    """The SHAPE_FIELDS of model ``name``, head_dim spelled out."""
    config = real_config(name)
    config["head_dim"] = head_dim_of(config)
    return {key: config[key] for key in SHAPE_FIELDS}


def reduced(
    name: str,
    num_layers: int = 2,
    hidden_size: int | None = None,
    num_key_value_heads: int | None = None,
) -> dict[str, Any]:
    """Model ``name``'s config with ``num_layers`` layers and, given ``hidden_size``, narrower.

    Narrowing keeps head_dim, so heads = hidden_size / head_dim; the KV heads keep the real
    query-heads-per-KV-head ratio unless ``num_key_value_heads`` is given (the real ratio
    often leaves too few KV heads to split over TP 2); intermediate_size keeps the real
    ratio to the width, rounded up to a multiple of 128. Everything else stays real.
    """
    config = real_config(name)
    if not 1 <= num_layers <= config["num_hidden_layers"]:
        raise ValueError(
            f"{name}: num_layers={num_layers} must be in 1..{config['num_hidden_layers']}"
        )
    config["num_hidden_layers"] = num_layers
    if hidden_size is not None:
        config.update(_narrowed(name, config, hidden_size, num_key_value_heads))
    elif num_key_value_heads is not None:
        raise ValueError(f"{name}: num_key_value_heads applies only with hidden_size")
    return config


def _narrowed(name: str, config: dict, hidden: int, kv_heads: int | None) -> dict[str, int]:
    head_dim = head_dim_of(config)
    if hidden <= 0 or hidden % head_dim:
        raise ValueError(f"{name}: hidden_size={hidden} must be a multiple of head_dim={head_dim}")
    heads = hidden // head_dim
    if kv_heads is None:
        group = config["num_attention_heads"] // config["num_key_value_heads"]
        if heads % group:
            raise ValueError(
                f"{name}: {heads} heads cannot keep {group} query heads per KV head; "
                "pass num_key_value_heads"
            )
        kv_heads = heads // group
    if kv_heads <= 0 or heads % kv_heads:
        raise ValueError(f"{name}: num_key_value_heads={kv_heads} must divide {heads} heads")
    ffn = math.ceil(config["intermediate_size"] * hidden / config["hidden_size"] / _FFN_MULTIPLE)
    return {
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": ffn * _FFN_MULTIPLE,
    }


def transformers_config(config: dict[str, Any]):
    """``config`` (a config.json dict) as the transformers config class it names."""
    from transformers import AutoConfig

    fields = dict(config)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)
