"""Check 4's pure parts: the logits comparison and its verdict, the reduced-depth copy of
an HF dir, the prompt it runs on (the three-way run itself: tests/dist, tests/vllm)."""

import pytest
import torch

from prime_megatron.checkpoint import hf_io
from prime_megatron.data.rows import normalize_row
from prime_megatron.data.template import PromptRenderer
from prime_megatron.data.tokenizer import build_char_tokenizer
from prime_megatron.preflight import logits
from prime_megatron.preflight.reduced_model import below_layer, write_reduced_model
from prime_megatron.preflight.report import FAIL, PASS
from prime_megatron.trainer.collect import PromptEncoder
from prime_megatron.trainer.inputs import StartModel


def test_logits_within_the_relative_tolerance_agree():
    reference = torch.tensor([[20.0, -3.0, 1.0], [0.5, 0.1, 0.2]])
    diff = logits.compare_logits(reference, reference + 1e-3)  # 1e-4 x 20 = 2e-3 allowed
    assert diff.ok and diff.argmax_agree == 2 and diff.scale == 20.0
    assert diff.max_abs_diff == pytest.approx(1e-3, rel=1e-3)  # fp32 rounding of 20 + 1e-3


def test_logits_beyond_it_disagree_and_argmax_flips_are_counted():
    reference = torch.tensor([[0.5, 0.1, 0.2], [0.3, 0.9, 0.0]])
    candidate = reference.clone()
    candidate[1, 2] = 1.0  # 1.0 off, and the second position's top token changes
    diff = logits.compare_logits(reference, candidate)
    assert not diff.ok and diff.tolerance == logits.LOGITS_RTOL  # scale < 1: absolute
    assert (diff.argmax_agree, diff.positions) == (1, 2)
    with pytest.raises(ValueError, match=r"logits of shape \(2, 2\), expected \(2, 3\)"):
        logits.compare_logits(reference, reference[:, :2])


def _agreement(diff: float, vllm: dict | None) -> logits.ModelAgreement:
    ref = torch.ones(3, 4)
    return logits.ModelAgreement(2, 28, 3, logits.compare_logits(ref, ref + diff), vllm)


def test_the_verdict_needs_both_comparisons_within_tolerance():
    ok = _agreement(0.0, None).check()
    assert ok.status == PASS and ok.summary == (
        "first 2 of 28 layers, 3-token prompt: agree within fp32 tolerance"
    )
    assert ok.details[1] == "vLLM: skipped (--no-vllm)"
    vllm_off = _agreement(0.0, {"abs_max": 0.01, "n_tokens": 8}).check()
    assert vllm_off.status == FAIL and "DISAGREE" in vllm_off.summary
    assert vllm_off.details[1].startswith("vLLM vs Megatron: max |dlogp| 1.00e-02 over 8")
    assert _agreement(0.1, None).check().status == FAIL


def test_the_reduced_copy_holds_the_first_layers_config_and_tokenizer(tmp_path, model_dir):
    config = hf_io.read_hf_config(model_dir)
    start = StartModel("hf", model_dir, config, model_dir)
    out = write_reduced_model(start, 2, tmp_path / "reduced")
    reduced = hf_io.read_hf_config(out)
    assert reduced["num_hidden_layers"] == 2 and reduced["layer_types"] == config["layer_types"][:2]
    original = hf_io.read_hf_state_dict(model_dir)
    kept = hf_io.read_hf_state_dict(out)
    assert set(kept) == {k for k in original if below_layer(k, 2)}
    assert "model.layers.1.mlp.up_proj.weight" in kept and "lm_head.weight" in kept
    assert all(torch.equal(kept[k], original[k]) for k in kept)
    assert (out / "tokenizer.json").is_file() and (out / "chat_template.jinja").is_file()


def test_the_parity_prompt_is_the_first_that_fits_cut_to_its_head(monkeypatch):
    tokenizer = build_char_tokenizer()
    encode = PromptEncoder(PromptRenderer("plain", tokenizer, "{prompt}"), tokenizer, 4)
    rows = [normalize_row({"question": q, "answer": "1"}) for q in ("12345", "1+2", "3+4")]
    assert tokenizer.decode(logits.parity_prompt(rows, encode)) == "1+2"
    monkeypatch.setattr(logits, "MAX_PROMPT_TOKENS", 2)
    assert tokenizer.decode(logits.parity_prompt(rows[:1], encode)) == "12"  # none fits
