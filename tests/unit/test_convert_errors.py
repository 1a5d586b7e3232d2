"""The HF -> Megatron tool reports a malformed config.json in one line and exits 2.

In-process (the tool's ``main``) rather than a subprocess: the config is rejected before
any weights or process groups are touched. tests/dist/test_convert_errors.py covers the
errors found later, in the weights.
"""

import importlib.util
import json
import warnings
from pathlib import Path

import pytest

from prime_megatron.models.hf_factory import hf_config

TOOL = Path(__file__).resolve().parents[2] / "tools" / "convert_hf_to_megatron.py"


def _tool_main():
    spec = importlib.util.spec_from_file_location("convert_hf_to_megatron", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _valid_config() -> dict:
    return hf_config("Qwen2ForCausalLM").to_dict()


def _without(key: str) -> dict:
    cfg = _valid_config()
    del cfg[key]
    return cfg


@pytest.mark.parametrize(
    "config, message",
    [
        ({**_valid_config(), "hidden_size": "abc"}, "hidden_size='abc' is invalid"),
        ([1, 2, 3], "must be a JSON object, got list"),
        (_without("num_hidden_layers"), "'num_hidden_layers' is missing"),
        ({**_valid_config(), "rope_scaling": 8}, "rope_scaling=8 is invalid"),
    ],
)
def test_malformed_config_json_is_one_error_line_and_exit_2(tmp_path, capsys, config, message):
    hf_dir, out = tmp_path / "hf", tmp_path / "out"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text(json.dumps(config))
    with warnings.catch_warnings():
        # Megatron's import-time notices (no TE/Apex) are not the tool's output; without
        # pytest's warnings plugin (-p no:warnings) they would land on stderr.
        warnings.simplefilter("ignore")
        assert _tool_main()(["--hf-dir", str(hf_dir), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    (error,) = lines
    assert error.startswith("convert_hf_to_megatron: error: ") and message in error, error
    assert str(hf_dir / "config.json") in error
    assert error.endswith(" (nothing was written)"), error
    assert not out.exists()
