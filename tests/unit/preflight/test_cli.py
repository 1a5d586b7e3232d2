"""tools/preflight.py in-process with --no-model (no weights, no process group): the report,
and each data or plan failure as its FAIL line and exit 2; bad input as one line, exit 2.
The model check's runs: tests/dist/test_preflight_model.py, tests/vllm/test_preflight.py."""

import pytest

from tests.unit.preflight.conftest import ROWS, write_job


@pytest.fixture
def run(tool, tmp_path, model_dir, monkeypatch, capsys):
    """Run the tool on ``rows`` with extra arguments; (exit code, stdout, stderr)."""
    monkeypatch.setattr("prime_megatron.console.route_logs", lambda path: None)

    def go(*argv: str, rows: list = ROWS, own_job: bool = True):
        job = ["--config", str(write_job(tmp_path, model_dir, rows))] if own_job else []
        code = tool.main([*job, "--gpus", "2", "--gpu-mem-gb", "80", "--no-model", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return go


def _line(out: str, title: str) -> str:
    return next(line for line in out.splitlines() if f"  {title}: " in line)


def test_a_job_that_passes_exits_0_with_a_line_per_check(run):
    code, out, _ = run()
    assert code == 0
    for i, title in enumerate(["tokenizer and chat template", "prompt lengths"], start=1):
        assert f"preflight [{i}/5] {title} ..." in out
    assert _line(out, "tokenizer and chat template").startswith("PASS")
    assert _line(out, "prompt lengths") == (
        "PASS  prompt lengths: min 5 / median 6 / p99 7 / max 7 tokens over 3 rows; 0 over "
        "rollout.max_prompt_len=64"
    )
    assert _line(out, "gold answers").startswith("PASS")
    assert _line(out, "model mapping and logits") == (
        "SKIP  model mapping and logits: --no-model: no weights loaded"
    )
    assert _line(out, "memory plan").startswith("PASS  memory plan: FITS on 2 x 80 GiB")
    assert "preflight: 4 PASS, 1 SKIP: ready (exit 0)" in out


@pytest.mark.parametrize("argv, rows, title", [
    ((), [*ROWS, {"question": "What is 2+2?", "answer": "4"}], "tokenizer and chat template"),
    (("rollout.max_prompt_len=4",), ROWS, "prompt lengths"),
    ((), [*ROWS, {"question": "1+1", "answer": "two and a half"}], "gold answers"),
    (("--gpu-mem-gb", "2"), ROWS, "memory plan"),
])  # fmt: skip
def test_each_failure_is_its_fail_line_and_exit_2(run, argv, rows, title):
    code, out, _ = run(*argv, rows=rows)
    assert code == 2
    assert _line(out, title).startswith("FAIL")
    assert [line.split()[0] for line in out.splitlines() if line[:4] == "FAIL"] == ["FAIL"]
    assert "NOT ready (exit 2)" in out


def test_some_over_long_prompts_are_a_warning_and_exit_0(run):
    code, out, _ = run(rows=[*ROWS, {"question": "1+2" * 30, "answer": "3"}])
    assert code == 0
    assert _line(out, "prompt lengths").startswith("WARN")
    assert "row 4: 92 tokens" in out and "1 WARN" in out


@pytest.mark.parametrize("argv, own_job, message", [
    (["parallel.tensor_parallel=3"], True, "preflight: config error: "
     "parallel.tensor_parallel=3 is invalid"),
    (["model.path=/nonexistent"], True, "preflight: config error: model.path='/nonexistent'"),
    # No --config: the default job, whose model and data are generated, not the user's.
    ([], False, "preflight: config error: model.source='synthetic' is invalid: hf or megatron"),
])  # fmt: skip
def test_bad_config_is_one_line_and_exit_2(run, argv, own_job, message):
    code, out, err = run(*argv, own_job=own_job)
    assert code == 2 and err.count("\n") == 1 and err.startswith(message), err
    assert "preflight [" not in out


def test_a_bad_model_dir_is_one_line_and_exit_2(run, tmp_path, model_dir):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_bytes((model_dir / "config.json").read_bytes())
    code, _, err = run(f"model.path={bare}")
    assert (
        code == 2
        and err
        == f"preflight: error: {bare}: no model.safetensors or "
        "model.safetensors.index.json (only safetensors checkpoints are read)\n"
    )
