"""vLLM at a real vocabulary: the Qwen2.5-0.5B shape (tests/real_shape_inputs.py: 151936
tokens, tied, 2 layers) and the real-size BPE tokenizers (prime_megatron/data/bpe.py)."""

import json

from prime_megatron.models.real_shapes import reduced, transformers_config
from tests.real_shape_inputs import eurus_rows
from tests.torchrun import run_torchrun
from tests.vllm.conftest import SCRIPTS

QWEN = "qwen2.5-0.5b-instruct"


def _tokenizer_case(directory, tok) -> dict:
    """The rendered chat prompts of the test rows and their ids under ``tok``."""
    texts = [tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
             for row in eurus_rows()]  # fmt: skip
    ids = [tok.encode(text, add_special_tokens=False) for text in texts]
    return {"dir": str(directory), "texts": texts, "ids": ids}


def test_vllm_tokenizer_and_logprobs_agree_with_transformers(
    real_shape_dir, bpe_tokenizer, tmp_path
):
    qwen_dir = real_shape_dir(QWEN)
    llama_dir = tmp_path / "llama3_tokenizer"  # config + tokenizer: vLLM's rules for llama
    bpe_tokenizer("llama3").save_pretrained(llama_dir)
    transformers_config(reduced("llama-3.2-1b")).save_pretrained(llama_dir)
    qwen = _tokenizer_case(qwen_dir, bpe_tokenizer("qwen2.5"))
    cases = {
        "tokenizers": [qwen, _tokenizer_case(llama_dir, bpe_tokenizer("llama3"))],
        "model": {"dir": str(qwen_dir), "prompts": qwen["ids"][:4]},
    }
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(cases))
    out = run_torchrun(SCRIPTS / "hf_vllm_agreement.py", 1, str(cases_file))
    assert "HF_VLLM_OK" in out


def test_vllm_logprobs_agree_with_transformers_at_the_llama3_shape(
    real_shape_dir, bpe_tokenizer, tmp_path
):
    """Llama-3.2-1B's shape: 128,256 tokens, tied embeddings, llama3 RoPE scaling."""
    llama_dir = real_shape_dir("llama-3.2-1b")
    prompts = _tokenizer_case(llama_dir, bpe_tokenizer("llama3"))["ids"][:4]
    cases_file = tmp_path / "cases.json"
    model = {"dir": str(llama_dir), "prompts": prompts}
    cases_file.write_text(json.dumps({"tokenizers": [], "model": model}))
    out = run_torchrun(SCRIPTS / "hf_vllm_agreement.py", 1, str(cases_file))
    assert "HF_VLLM_OK" in out
