"""HF -> Megatron -> (load at a layout, logits parity, save at that layout) -> HF, bit-exact."""

import pytest
import torch

from tests.dist.conftest import check_parity_and_round_trip, run_ok

CASES = [
    ("qwen2", 1, 1),
    ("qwen2", 2, 1),
    ("qwen2", 1, 2),
    ("qwen2", 2, 2),
    ("llama3", 2, 2),
    ("llama2", 2, 1),
]


@pytest.mark.parametrize("variant, tp, pp", CASES)
def test_parity_and_round_trip_at_layout(variant, tp, pp, hf_models, megatron_ckpts, tmp_path):
    check_parity_and_round_trip(hf_models[variant], megatron_ckpts[variant], [(tp, pp)], tmp_path)


@pytest.mark.parametrize("variant, tp, pp", [("qwen2", 2, 2), ("llama3", 2, 1)])
def test_hf_dir_mapped_in_memory_at_layout(variant, tp, pp, hf_models, tmp_path):
    """model.source=hf: the HF dir, mapped in memory and sharded per rank, is the model the
    converter makes (HF logits, and a save from that layout converts back bit-exactly)."""
    check_parity_and_round_trip(hf_models[variant], "from-hf", [(tp, pp)], tmp_path)


def test_exported_checkpoint_loads_in_transformers(hf_models, megatron_ckpts, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "hf"
    run_ok("convert_megatron_to_hf.py", "--ckpt", str(megatron_ckpts["qwen2"]), "--out", str(out))
    assert (out / "generation_config.json").is_file()  # side files travel with the weights
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(hf_models["qwen2"], dtype=torch.float32)
    tokens = torch.arange(20)[None] % 61
    with torch.no_grad():
        assert torch.equal(model(tokens).logits, ref(tokens).logits)
