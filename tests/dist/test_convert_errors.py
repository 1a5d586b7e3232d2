"""Bad inputs make the conversion tools fail with a clear message and write nothing."""

import json
import shutil

import pytest

from tests.dist.conftest import run_tool


def _assert_failed_cleanly(proc, out, message):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "nothing was written" in proc.stderr
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*")) and not list(out.parent.glob("*.partial"))


@pytest.fixture()
def hf_copy(hf_models, tmp_path):
    dst = tmp_path / "hf_in"
    shutil.copytree(hf_models["qwen2"], dst)
    return dst


def _to_megatron(hf_dir, out, *extra):
    return run_tool("convert_hf_to_megatron.py", "--hf-dir", str(hf_dir), "--out", str(out), *extra)


def test_unsupported_architecture(hf_copy, tmp_path):
    cfg = json.loads((hf_copy / "config.json").read_text())
    cfg["architectures"] = ["MixtralForCausalLM"]
    (hf_copy / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    _assert_failed_cleanly(_to_megatron(hf_copy, out), out, "MixtralForCausalLM")


def test_tp_not_dividing_heads_or_groups(hf_copy, tmp_path):
    out = tmp_path / "out"
    _assert_failed_cleanly(_to_megatron(hf_copy, out, "--tp", "3"), out, "num_attention_heads=4")
    _assert_failed_cleanly(_to_megatron(hf_copy, out, "--tp", "4"), out, "query groups")


def test_missing_shard(hf_models, tmp_path):
    from transformers import AutoModelForCausalLM

    sharded = tmp_path / "sharded"
    model = AutoModelForCausalLM.from_pretrained(hf_models["qwen2"])
    model.save_pretrained(sharded, max_shard_size="300KB")
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert len(shards) > 2
    shards[1].unlink()
    out = tmp_path / "out"
    _assert_failed_cleanly(_to_megatron(sharded, out), out, shards[1].name)


def test_corrupt_shard(hf_copy, tmp_path):
    weights = hf_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out = tmp_path / "out"
    _assert_failed_cleanly(_to_megatron(hf_copy, out), out, "cannot read shard")


def test_shape_mismatch_between_config_and_weights(hf_copy, tmp_path):
    cfg = json.loads((hf_copy / "config.json").read_text())
    cfg["intermediate_size"] = 384
    (hf_copy / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    _assert_failed_cleanly(_to_megatron(hf_copy, out), out, "shape mismatch")


def test_existing_output_is_not_overwritten(hf_copy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = _to_megatron(hf_copy, out)
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert (out / "keep.txt").read_text() == "precious"


def test_megatron_to_hf_rejects_non_checkpoint(hf_copy, tmp_path):
    out = tmp_path / "out"
    proc = run_tool("convert_megatron_to_hf.py", "--ckpt", str(hf_copy), "--out", str(out))
    _assert_failed_cleanly(proc, out, "not a prime_megatron checkpoint")
