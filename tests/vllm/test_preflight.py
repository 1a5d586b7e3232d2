"""tools/preflight.py end to end with vLLM: a model dir of one's own (random weights, the
character tokenizer, head_dim 64 for vLLM's CPU attention) and jsonl rows pass every check,
transformers, Megatron and vLLM agreeing on the first two layers."""

from tests.dist.conftest import run_tool
from tests.unit.preflight.conftest import save_model, write_job


def test_a_job_of_ones_own_passes_every_check(tmp_path):
    model = save_model(tmp_path / "model", hidden_size=128, intermediate_size=256,
                       num_attention_heads=2, num_key_value_heads=2, head_dim=64)  # fmt: skip
    job = write_job(tmp_path, model)
    proc = run_tool("preflight.py", "--config", str(job), "--gpus", "1", "--gpu-mem-gb", "80",
                    "--log-file", str(tmp_path / "preflight.log"))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    statuses = [line.split()[0] for line in lines if line[:4] in ("PASS", "WARN", "FAIL", "SKIP")]
    assert statuses == ["PASS"] * 5
    vllm = next(line.strip() for line in lines if line.strip().startswith("vLLM vs Megatron"))
    assert vllm.endswith("over 8 greedy tokens (tolerance 0.001)")
    assert "preflight: 5 PASS: ready (exit 0)" in proc.stdout
    assert "vLLM" in (tmp_path / "preflight.log").read_text()  # upstream logs went there
