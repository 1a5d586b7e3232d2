"""tools/preflight.py's model check (check 4) without vLLM, one process on gloo: a converted
Megatron checkpoint agrees with transformers; a builder that misreads the config and a
checkpoint missing a tensor are each the check's FAIL line and exit 2. With vLLM:
tests/vllm/test_preflight.py; the other checks: tests/unit/preflight/."""

import subprocess
import sys

import pytest
from safetensors.torch import load_file, save_file

from tests.dist.conftest import SCRIPTS, run_ok, run_tool
from tests.unit.preflight.conftest import save_model, write_job

TITLE = "model mapping and logits"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("preflight") / "model")


def _args(tmp_path, model_dir, *overrides: str) -> list[str]:
    job = write_job(tmp_path, model_dir)
    return ["--config", str(job), "--gpus", "1", "--gpu-mem-gb", "80", "--no-vllm",
            "--log-file", str(tmp_path / "preflight.log"), *overrides]  # fmt: skip


def _model_line(proc) -> str:
    return next(line for line in proc.stdout.splitlines() if f"  {TITLE}: " in line)


def test_a_converted_checkpoint_agrees_with_transformers(tmp_path, model_dir):
    ckpt = tmp_path / "ckpt"
    run_ok("convert_hf_to_megatron.py", "--hf-dir", str(model_dir), "--out", str(ckpt))
    proc = run_tool("preflight.py", *_args(tmp_path, model_dir, "model.source=megatron",
                                           f"model.path={ckpt}", "--layers", "3"))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _model_line(proc) == (
        f"PASS  {TITLE}: first 3 of 4 layers, 7-token prompt: agree within fp32 tolerance"
    )
    assert "argmax agrees at 7/7 positions" in proc.stdout


def test_a_builder_that_misreads_the_config_disagrees(tmp_path, model_dir):
    cmd = [sys.executable, str(SCRIPTS / "preflight_misread.py"), *_args(tmp_path, model_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert _model_line(proc).startswith(f"FAIL  {TITLE}: first 2 of 4 layers, 7-token prompt: "
                                        "DISAGREE")  # fmt: skip
    assert "preflight: 4 PASS, 1 FAIL: NOT ready (exit 2)" in proc.stdout


def test_a_checkpoint_missing_a_tensor_fails_the_check_naming_it(tmp_path, model_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    state = load_file(broken / "model.safetensors")
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, broken / "model.safetensors", metadata={"format": "pt"})
    proc = run_tool("preflight.py", *_args(tmp_path, broken))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert _model_line(proc) == (
        f"FAIL  {TITLE}: MappingError: HF checkpoint does not match the architecture: "
        "missing [model.layers.1.mlp.up_proj.weight], unexpected none"
    )
