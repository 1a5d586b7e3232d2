"""Fixtures for the vLLM tier: tiny models vLLM's CPU attention accepts (head_dim 64)."""

from pathlib import Path

import pytest

from prime_megatron.models.hf_factory import hf_config, save_random_hf_model
from tests.dist.conftest import run_ok

SCRIPTS = Path(__file__).parent / "scripts"

MODELS = {
    # Qwen2 with GQA (4 heads, 2 KV groups) and q/k/v biases, untied head
    "qwen2_gqa": dict(architecture="Qwen2ForCausalLM", hidden_size=256, intermediate_size=512,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=64),
    # Llama with tied embeddings and plain multi-head attention
    "llama_tied": dict(architecture="LlamaForCausalLM", hidden_size=128, intermediate_size=256,
                       num_attention_heads=2, num_key_value_heads=2, head_dim=64,
                       tie_word_embeddings=True),
}  # fmt: skip


@pytest.fixture(scope="session")
def vllm_hf_models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("vllm_hf")
    return {
        name: save_random_hf_model(base / name, hf_config(**kw), seed=i)
        for i, (name, kw) in enumerate(MODELS.items())
    }


@pytest.fixture(scope="session")
def vllm_ckpts(vllm_hf_models, tmp_path_factory) -> dict[str, Path]:
    """Megatron checkpoints (vocab padded for TP 2) with the HF config in ``<ckpt>/hf``."""
    base = tmp_path_factory.mktemp("vllm_meg")
    out = {}
    for name, hf_dir in vllm_hf_models.items():
        out[name] = base / name
        run_ok("convert_hf_to_megatron.py", "--hf-dir", str(hf_dir), "--out", str(out[name]),
               "--tp", "2")  # fmt: skip
    return out
