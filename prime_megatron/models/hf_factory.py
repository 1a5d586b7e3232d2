"""Random Hugging Face models built locally (there is no model hub on our machines).

Used by the tests, the conversion/sync benchmarks and the default demo job. Every tensor,
including norms and biases that transformers initialises to constants, gets random values,
so a mapping that swaps or mis-slices two tensors cannot go unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from prime_megatron.models.real_shapes import tensor_shape

TINY_DEFAULTS: dict[str, Any] = dict(
    vocab_size=61,  # odd on purpose: exercises vocab padding
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)


# Tensor shapes (random weights here) for benchmarks: a real model's (real_shapes.py) and
# a small one.
PRESETS: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": tensor_shape("qwen2.5-0.5b-instruct"),
    "small": dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        head_dim=64, intermediate_size=1024, vocab_size=32000, tie_word_embeddings=True,
    ),
}  # fmt: skip


def hf_config(architecture: str = "Qwen2ForCausalLM", **overrides: Any):
    """A transformers config for a tiny (or, with overrides, any-size) model."""
    from transformers import LlamaConfig, Qwen2Config

    cls = {"Qwen2ForCausalLM": Qwen2Config, "LlamaForCausalLM": LlamaConfig}[architecture]
    kwargs = {**TINY_DEFAULTS, **overrides}
    return cls(architectures=[architecture], **kwargs)


def random_hf_model(config, seed: int = 0, dtype: torch.dtype = torch.float32):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def save_random_hf_model(
    out_dir: Path, config, seed: int = 0, dtype: torch.dtype = torch.float32, tokenizer=None
) -> Path:
    model = random_hf_model(config, seed, dtype)
    model.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return Path(out_dir)
