"""Fixtures for multi-process tests: tiny random HF checkpoints and their conversions."""

import subprocess
import sys
from pathlib import Path

import pytest

from prime_megatron.models.hf_factory import hf_config, save_random_hf_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).parent / "scripts"

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
               "rope_theta": 500000.0}  # fmt: skip

VARIANTS = {
    # Qwen2: GQA, q/k/v biases, untied head
    "qwen2": dict(architecture="Qwen2ForCausalLM"),
    # Llama 3: GQA, tied embeddings, llama3 RoPE scaling
    "llama3": dict(
        architecture="LlamaForCausalLM", tie_word_embeddings=True, rope_parameters=LLAMA3_ROPE
    ),
    # Llama 2: plain multi-head attention, untied head
    "llama2": dict(architecture="LlamaForCausalLM", num_key_value_heads=4),
}


def run_tool(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_ok(script: str, *args: str) -> str:
    proc = run_tool(script, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("hf")
    return {
        name: save_random_hf_model(base / name, hf_config(**kw), seed=i)
        for i, (name, kw) in enumerate(VARIANTS.items())
    }


@pytest.fixture(scope="session")
def megatron_ckpts(hf_models, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("meg")
    out = {}
    for name, hf_dir in hf_models.items():
        out[name] = base / name
        run_ok("convert_hf_to_megatron.py", "--hf-dir", str(hf_dir), "--out", str(out[name]),
               "--tp", "2")  # fmt: skip
    return out
