"""Fixtures for multi-process tests: tiny random HF checkpoints and their conversions."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prime_megatron.checkpoint.hf_io import read_hf_state_dict
from prime_megatron.models.hf_factory import hf_config, save_random_hf_model
from tests.torchrun import run_torchrun

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


def check_parity_and_round_trip(
    hf_dir: Path,
    ckpt: Path | str,
    layouts: list[tuple[int, int]],
    work: Path,
    tokens_file: Path | None = None,
) -> str:
    """``scripts/model_parity.py`` through ``layouts`` (TP, PP) in one launch: at each one
    Megatron's logits == HF's and a save from it, which the next one loads; the last save
    converted back to HF has every tensor bit-identical to ``hf_dir``'s. ``ckpt``
    "from-hf" maps ``hf_dir`` in memory instead of loading a converted checkpoint."""
    resaved = work / "resaved"
    chain = ",".join(f"{tp}x{pp}" for tp, pp in layouts)
    extra = [str(tokens_file)] if tokens_file else []
    out = run_torchrun(SCRIPTS / "model_parity.py", max(tp * pp for tp, pp in layouts),
                       str(hf_dir), str(ckpt), chain, str(resaved), *extra)  # fmt: skip
    for tp, pp in layouts:
        assert f"PARITY tp={tp} pp={pp}" in out
    run_ok("convert_megatron_to_hf.py", "--ckpt", str(resaved), "--out", str(work / "hf"))
    original = read_hf_state_dict(hf_dir)
    if json.loads((Path(hf_dir) / "config.json").read_text()).get("tie_word_embeddings"):
        original.pop("lm_head.weight", None)  # tied: HF may store a copy; the export does not
    back = read_hf_state_dict(work / "hf")
    assert set(back) == set(original)
    assert all(torch.equal(back[k], original[k]) for k in original)
    return out


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
