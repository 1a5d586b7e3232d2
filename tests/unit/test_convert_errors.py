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


def _edit_config(hf_dir: Path, **changes) -> None:
    config = json.loads((hf_dir / "config.json").read_text())
    config.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del config[key]
    (hf_dir / "config.json").write_text(json.dumps(config))


def _edit_weights(hf_dir: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(hf_dir / "model.safetensors")
    change(state)
    save_file(state, hf_dir / "model.safetensors", metadata={"format": "pt"})


Q0 = "model.layers.0.self_attn.q_proj.weight"
EMBED = "model.embed_tokens.weight"


def _short_vocab(hf: Path) -> None:
    _edit_config(hf, vocab_size=300)


def _index_with_list(hf: Path) -> None:
    (hf / "model.safetensors.index.json").write_text('{"weight_map": ["model.safetensors"]}')


def _index_not_json(hf: Path) -> None:
    (hf / "model.safetensors.index.json").write_text("{weight_map: oops")


def _config_not_utf8(hf: Path) -> None:
    (hf / "config.json").write_bytes(b'{"hidden_size": "\xff"}')


def _wrong_q_proj(hf: Path) -> None:
    import torch

    _edit_weights(hf, lambda state: state.__setitem__(Q0, torch.zeros(64, 128)))


def _int8_weights(hf: Path) -> None:
    _edit_weights(
        hf, lambda state: state.__setitem__(EMBED, state[EMBED].to(dtype=__import__("torch").int8))
    )


def _three_heads(hf: Path) -> None:
    _edit_config(hf, hidden_size=64, num_attention_heads=3, num_key_value_heads=3, head_dim=None)


@pytest.mark.parametrize(
    "break_it, extra, names, message",
    [
        (_short_vocab, [], "", "model.embed_tokens.weight (61, 128), config implies (300, 128)"),
        (_index_with_list, [], "model.safetensors.index.json", "weight_map must be an object"),
        (_index_not_json, [], "model.safetensors.index.json", "not valid JSON"),
        (_config_not_utf8, [], "config.json", "not UTF-8 text"),
        (_wrong_q_proj, [], "", f"{Q0} (64, 128), config implies (128, 128)"),
        (_int8_weights, [], "", f"weights must be floating point, got {EMBED} (torch.int8)"),
        (_three_heads, [], "config.json", "num_attention_heads=3 does not divide hidden_size=64"),
        # The layout is no file's: the message names the setting.
        (None, ["--tp", "0"], None, "tensor_parallel=0 is invalid: >= 1"),
        (None, ["--tp", "-2"], None, "tensor_parallel=-2 is invalid: >= 1"),
    ],
)
def test_bad_weights_and_layouts_are_one_line_naming_the_file(
    tmp_path, capsys, break_it, extra, names, message
):
    from prime_megatron.models.hf_factory import save_random_hf_model

    hf_dir = save_random_hf_model(tmp_path / "hf", hf_config("Qwen2ForCausalLM"))
    if break_it is not None:
        break_it(hf_dir)
    capsys.readouterr()  # the stand-in model's own progress bar
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _tool_main()(["--hf-dir", str(hf_dir), "--out", str(out), *extra]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0], lines[0]
    assert names is None or str(hf_dir / names) in lines[0], lines[0]
    assert not out.exists()
