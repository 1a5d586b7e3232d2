"""Test inputs at real model shapes: reduced-depth HF dirs with the real vocabulary and a
matching byte-level BPE tokenizer, and a small Eurus-2-RL-Data-style math parquet.

Widths are small: what these inputs test is the 128-152k vocabulary (embedding, output
layer, tokenizer ids), tying, biases and RoPE scaling, not the hidden size.
"""

from __future__ import annotations

from pathlib import Path

# Reduced shape per real model. head_dim stays real (64 or 128); the KV heads are set
# where the real GQA ratio would leave fewer than two (TP 2 splits them).
TEST_SHAPES: dict[str, dict] = {
    "qwen2.5-0.5b-instruct": dict(hidden_size=256, num_key_value_heads=2),  # tied, GQA 2:1
    "qwen2.5-math-7b": dict(hidden_size=256, num_key_value_heads=2),  # untied, 2 x 128
    "llama-3.2-1b": dict(hidden_size=512),  # tied, llama3 RoPE, real GQA 4:1
}
TOKENIZER_STYLE = {"qwen2.5-0.5b-instruct": "qwen2.5", "qwen2.5-math-7b": "qwen2.5",
                   "llama-3.2-1b": "llama3"}  # fmt: skip

SYSTEM_PROMPT = (
    "Think the problem through step by step, then give the final answer as \\boxed{answer}."
)
# (question, gold answer) pairs: fractions, roots, intervals, percentages, negative
# numbers and non-ASCII text, each gold one the math verifier accepts.
MATH_PROBLEMS = [
    ("Compute $\\frac{1}{2} + \\frac{1}{3}$.", "\\frac{5}{6}"),
    ("Find the larger root of $x^2 - 5x + 6 = 0$.", "3"),
    ("Simplify $\\sqrt{50}$.", "5\\sqrt{2}"),
    ("For which real $x$ is $2x - 1 > 3$? Answer with an interval.", "(2, \\infty)"),
    ("Ein Würfel hat die Kantenlänge 3 cm. Wie groß ist sein Volumen in cm³?", "27"),
    ("What is $25\\%$ of $48$?", "12"),
    ("Solve for $x$:\n$$3x + 7 = 1$$", "-2"),
    ("集合 $\\{1, 2, 3\\}$ 有多少个子集？", "8"),
]


def write_real_shape_dir(out: Path, name: str, tokenizer, seed: int = 0) -> Path:
    """A random-weight fp32 HF dir of ``TEST_SHAPES[name]`` with ``tokenizer`` saved in it."""
    import torch

    from prime_megatron.models.hf_factory import save_random_hf_model
    from prime_megatron.models.real_shapes import reduced, transformers_config

    config = transformers_config(reduced(name, **TEST_SHAPES[name]))
    return save_random_hf_model(out, config, seed, torch.float32, tokenizer)


def eurus_rows() -> list[dict]:
    """MATH_PROBLEMS as rows of PRIME's RL data (Eurus-2-RL-Data's columns)."""
    return [
        {
            "data_source": "numina_synthetic_math",
            "prompt": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": question},
            ],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": gold},
            "extra_info": {"split": "train", "index": i},
        }
        for i, (question, gold) in enumerate(MATH_PROBLEMS)
    ]


def write_eurus_parquet(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(eurus_rows()), str(path))
    return Path(path)


def chat_prompt_ids(tokenizer, rows: int = 4, length: int = 24) -> list[list[int]]:
    """The last ``length`` token ids of the first ``rows`` rendered chat prompts (question
    end, turn-end and assistant header special tokens): equal-length rows for a forward."""
    out = []
    for row in eurus_rows()[:rows]:
        text = tokenizer.apply_chat_template(
            row["prompt"], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) < length:
            raise ValueError(f"a chat prompt has {len(ids)} tokens, fewer than {length}")
        out.append(ids[-length:])
    return out
