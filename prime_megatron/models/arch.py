"""What a supported Hugging Face decoder *is*, independent of how Megatron lays it out.

``ModelArch.from_hf_config`` reads a transformers config (object or dict) and either returns
the handful of numbers the Megatron builder and the weight mappings need, or raises
``UnsupportedModelError`` saying exactly which feature is not supported, or
``InvalidModelConfigError`` naming the field that is missing or has the wrong type.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# HF architecture name -> whether its attention projections carry q/k/v biases by design.
SUPPORTED_ARCHITECTURES = {"Qwen2ForCausalLM": True, "LlamaForCausalLM": False}

# Megatron's llama3 RoPE scaling hard-codes these; other values cannot be represented.
_LLAMA3_ROPE_FIXED = {
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


VOCAB_PAD_MULTIPLE = 128


def padded_vocab_size(vocab_size: int, tp: int, multiple: int = VOCAB_PAD_MULTIPLE) -> int:
    """Smallest size >= ``vocab_size`` divisible by ``multiple * tp`` (Megatron's convention:
    the embedding and output layer hold that many rows so that TP divides them)."""
    step = multiple * tp
    return -(-vocab_size // step) * step


class UnsupportedModelError(ValueError):
    """The HF model uses an architecture or feature the Megatron builder cannot reproduce."""


class InvalidModelConfigError(ValueError):
    """The HF config is not an object, or a field it needs is missing or of the wrong type."""


@dataclass(frozen=True)
class ModelArch:
    architecture: str
    vocab_size: int
    hidden_size: int
    ffn_hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_query_groups: int
    head_dim: int
    max_position_embeddings: int
    rope_theta: float
    norm_eps: float
    qkv_bias: bool
    tie_word_embeddings: bool
    rope_scaling: str | None = None  # None | "llama3" | "linear"
    rope_scaling_factor: float = 1.0

    @classmethod
    def from_hf_config(cls, config: Any) -> ModelArch:
        cfg = _as_dict(config)
        arch = _single_architecture(cfg)
        _reject_unsupported_features(cfg, arch)
        heads = _positive_int(cfg, "num_attention_heads")
        hidden = _positive_int(cfg, "hidden_size")
        if "head_dim" not in cfg and hidden % heads:
            raise InvalidModelConfigError(
                f"num_attention_heads={heads} does not divide hidden_size={hidden} and no "
                "head_dim is given"
            )
        rope_type, rope_theta, factor = _rope(cfg)
        return cls(
            architecture=arch,
            vocab_size=_positive_int(cfg, "vocab_size"),
            hidden_size=hidden,
            ffn_hidden_size=_positive_int(cfg, "intermediate_size"),
            num_layers=_positive_int(cfg, "num_hidden_layers"),
            num_attention_heads=heads,
            num_query_groups=_positive_int(cfg, "num_key_value_heads", heads),
            head_dim=_positive_int(cfg, "head_dim", hidden // heads),
            max_position_embeddings=_positive_int(cfg, "max_position_embeddings"),
            rope_theta=rope_theta,
            norm_eps=_number(cfg, "rms_norm_eps"),
            qkv_bias=SUPPORTED_ARCHITECTURES[arch] or _flag(cfg, "attention_bias"),
            tie_word_embeddings=_flag(cfg, "tie_word_embeddings"),
            rope_scaling=rope_type,
            rope_scaling_factor=factor,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check_layout(self, tp: int, pp: int) -> None:
        """Raise ``ValueError`` if this model cannot be split ``tp`` x ``pp`` ways."""
        for what, n in (("tensor_parallel", tp), ("pipeline_parallel", pp)):
            if n < 1:
                raise ValueError(f"{what}={n} is invalid: >= 1")
        for what, n in (
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads (query groups)", self.num_query_groups),
        ):
            if n % tp:
                raise ValueError(f"tensor_parallel={tp} does not divide {what}={n}")
        if self.ffn_hidden_size % tp:
            raise ValueError(f"tensor_parallel={tp} does not divide intermediate_size")
        if self.num_layers % pp:
            raise ValueError(
                f"pipeline_parallel={pp} does not divide num_hidden_layers={self.num_layers}"
            )


def _as_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, dict):
        return config
    if callable(getattr(config, "to_dict", None)):  # a transformers PretrainedConfig
        return config.to_dict()
    raise InvalidModelConfigError(
        f"the model config must be a JSON object of fields, got {type(config).__name__}"
    )


_REQUIRED = object()  # default of a field that has none


def _field(
    cfg: dict[str, Any],
    key: str,
    want: str,
    ok: Callable[[Any], bool],
    default: Any = _REQUIRED,
    label: str = "",
) -> Any:
    """``cfg[key]`` checked with ``ok``; null counts as absent (HF writes e.g. head_dim: null)."""
    value = cfg.get(key)
    if value is None:
        if default is _REQUIRED:
            raise InvalidModelConfigError(f"config field {label or key!r} is missing")
        return default
    if not ok(value):
        raise InvalidModelConfigError(
            f"config field {label or key}={value!r} is invalid: expected {want}"
        )
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(cfg: dict[str, Any], key: str, default: Any = _REQUIRED) -> int:
    return _field(cfg, key, "a positive integer", lambda v: _is_int(v) and v > 0, default)


def _number(cfg: dict[str, Any], key: str, default: Any = _REQUIRED, label: str = "") -> float:
    def ok(v: Any) -> bool:
        return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)

    return float(_field(cfg, key, "a finite number", ok, default, label))


def _flag(cfg: dict[str, Any], key: str) -> bool:
    return _field(cfg, key, "true or false", lambda v: isinstance(v, bool), False)


def _mapping(cfg: dict[str, Any], key: str) -> dict[str, Any]:
    return dict(_field(cfg, key, "an object", lambda v: isinstance(v, dict), {}))


def _single_architecture(cfg: dict[str, Any]) -> str:
    archs = cfg.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise InvalidModelConfigError(
            f"config field architectures={archs!r} is invalid: expected a list of class names"
        )
    if len(archs) != 1 or archs[0] not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"architecture {archs or cfg.get('model_type')!r} is not supported; "
            f"supported: {sorted(SUPPORTED_ARCHITECTURES)}"
        )
    return archs[0]


def _reject_unsupported_features(cfg: dict[str, Any], arch: str) -> None:
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise UnsupportedModelError(f"{arch}: hidden_act={act!r} is not supported (only silu)")
    if cfg.get("mlp_bias"):
        raise UnsupportedModelError(f"{arch}: mlp_bias=True is not supported")
    if arch == "LlamaForCausalLM" and cfg.get("attention_bias"):
        # Megatron's add_qkv_bias covers q/k/v only; Llama's flag also biases o_proj.
        raise UnsupportedModelError(f"{arch}: attention_bias=True (o_proj bias) is not supported")
    if cfg.get("use_sliding_window"):
        raise UnsupportedModelError(f"{arch}: use_sliding_window=True is not supported")


def _rope(cfg: dict[str, Any]) -> tuple[str | None, float, float]:
    """(scaling type, theta, factor) from either transformers 4 or 5 config layout."""
    params = _mapping(cfg, "rope_parameters")
    params.update(_mapping(cfg, "rope_scaling"))
    theta = _number(params, "rope_theta", _number(cfg, "rope_theta", 10000.0), "rope rope_theta")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type in (None, "default"):
        return None, theta, 1.0
    factor = _number(params, "factor", 1.0, "rope factor")
    if rope_type == "linear":
        return "linear", theta, factor
    if rope_type == "llama3":
        for key, want in _LLAMA3_ROPE_FIXED.items():
            if _number(params, key, want, f"rope {key}") != float(want):
                raise UnsupportedModelError(
                    f"llama3 rope scaling with {key}={params[key]} is not supported "
                    f"(Megatron fixes it to {want})"
                )
        return "llama3", theta, factor
    raise UnsupportedModelError(f"rope scaling type {rope_type!r} is not supported")
