"""HF -> Megatron -> HF at the real vocabularies (tests/real_shape_inputs.py: Qwen2.5-0.5B
tied, Qwen2.5-Math-7B untied, Llama-3.2-1B with llama3 RoPE scaling; 2 layers, narrow).

At TP 2, PP 2 and TP 1: Megatron's logits equal transformers' (fp32) on chat prompts
encoded with the model's own tokenizer, the trainer's vocab-parallel log-probs equal
transformers' over the real vocabulary, and a save from that layout converts back to
the original tensors bit for bit. The checkpoint is converted for TP 2, so Qwen2.5-0.5B's
151936 rows are padded to 152064 and the padding must stay out of every result.
"""

import functools
import json

import pytest

from tests.dist.conftest import check_parity_and_round_trip, run_ok
from tests.real_shape_inputs import TEST_SHAPES, TOKENIZER_STYLE, chat_prompt_ids

# One launch per model: each layout loads the previous one's save (world 2; TP 1 runs as
# 2 data-parallel ranks), and the last save converts back to HF.
LAYOUTS = [(2, 1), (1, 2), (1, 1)]


@pytest.fixture(scope="module")
def real_ckpt(real_shape_dir, tmp_path_factory):
    """model name -> its HF dir converted by tools/convert_hf_to_megatron.py (--tp 2)."""
    base = tmp_path_factory.mktemp("real_meg")

    @functools.cache
    def convert(name: str):
        out = base / name
        run_ok("convert_hf_to_megatron.py", "--hf-dir", str(real_shape_dir(name)),
               "--out", str(out), "--tp", "2")  # fmt: skip
        return out

    return convert


@pytest.mark.slow
@pytest.mark.parametrize("name", TEST_SHAPES)
def test_parity_and_round_trip_at_real_vocab(name, real_shape_dir, real_ckpt, bpe_tokenizer,
                                             tmp_path):  # fmt: skip
    tokens = tmp_path / "chat_prompts.json"
    tokens.write_text(json.dumps(chat_prompt_ids(bpe_tokenizer(TOKENIZER_STYLE[name]))))
    out = check_parity_and_round_trip(
        real_shape_dir(name), real_ckpt(name), LAYOUTS, tmp_path, tokens
    )
    assert out.count("TRAINER_LOGPROBS") >= len(LAYOUTS)
