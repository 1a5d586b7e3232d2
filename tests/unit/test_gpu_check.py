"""benchmarks/gpu_check.py in its CPU quick mode, as a subprocess (as an operator runs it).

No accelerator here: this keeps the script runnable, so a lent GPU's few minutes are not spent
on a broken script. What only a GPU shows (compiled kernels, timings, the CUDA build path) is
listed in benchmarks/README.md, "gpu_check.py".
"""

import json
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _run(*args: str) -> tuple[int, dict]:
    cmd = [sys.executable, str(SCRIPT), "--quick", "--device", "cpu", *args]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout[-2000:] + out.stderr[-3000:]
    return out.returncode, json.loads(lines[0])


def test_cpu_quick_mode_runs_every_part_and_parity_passes():
    rc, report = _run()
    assert rc == 0, report
    assert report["benchmark"] == "gpu_check" and report["device"] == "cpu"
    eq = report["kernel_equivalence"]
    assert eq["status"] == "pass" and eq["mode"] == "interpreter", eq
    assert set(eq["max_abs_diff"]) == {"float32", "bfloat16"}
    assert len(eq["cases"]) == 10 and all(c["pass"] for c in eq["cases"])
    assert {"logp", "entropy", "grad"} == set(eq["max_abs_diff"]["bfloat16"])
    bench = report["kernel_benchmark"]
    assert bench["status"] == "skipped" and "CUDA only" in bench["reason"]
    parity = report["megatron_parity"]
    assert parity["status"] == "pass", parity
    tiny = parity["models"]["tiny"]
    assert tiny["status"] == "pass" and tiny["logits_max_abs_diff"] <= 1e-4
    assert tiny["grad_norm_rel_diff"] <= 1e-4 and tiny["grad_worst_rel_diff"] <= 1e-3
    assert tiny["grad_tensors"] > 0 and parity["megatron_core"]["version"]
    assert report["ok"] is False  # a skipped part is not a pass


def test_a_broken_part_reports_its_error_and_the_others_still_run(tmp_path):
    fake = tmp_path / "megatron"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise ImportError("planted: no megatron-core here")\n')
    parts = "kernel_equivalence,megatron_parity"
    rc, report = _run("--megatron-path", str(tmp_path), "--parts", parts)
    assert rc == 1
    assert report["extra_paths"] == [str(tmp_path.resolve())]
    parity = report["megatron_parity"]
    assert parity["status"] == "error" and "planted" in parity["error"], parity
    assert "--megatron-path" in parity["error"]
    assert report["kernel_equivalence"]["status"] == "pass"
    assert report["kernel_benchmark"] == {"status": "skipped", "reason": "not in --parts"}
    assert report["ok"] is False


def test_gpu_build_without_te_asks_for_no_te_kernels(monkeypatch):
    # The lent GPU has no Transformer-Engine/apex: Megatron's config must not ask for their
    # fused RoPE / softmax / persistent norm there (it raises or asserts on first use).
    import megatron.core.transformer  # noqa: F401  (imported for real before CUDA is faked)

    from prime_megatron.distributed.init import ParallelGroups
    from prime_megatron.models import builder
    from prime_megatron.models.arch import ModelArch
    from prime_megatron.models.hf_factory import TINY_DEFAULTS

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(builder, "te_available", lambda: False)
    arch = ModelArch.from_hf_config({"architectures": ["Qwen2ForCausalLM"], **TINY_DEFAULTS})
    parallel = ParallelGroups(None, None, None, 1, 1, 1, 0, 0, 0, None)
    config = builder.transformer_config(arch, parallel, torch.float32)
    assert not (config.apply_rope_fusion or config.masked_softmax_fusion)
    assert not config.persist_layer_norm and not config.use_cpu_initialization
