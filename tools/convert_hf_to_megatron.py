"""Convert a Hugging Face Qwen2/Llama checkpoint into a Megatron dist checkpoint.

    python tools/convert_hf_to_megatron.py --hf-dir HF --out CKPT [--tp N] [--pp N]

The output (megatron-core torch_dist format + prime_megatron.json + the tokenizer files)
loads at any TP/PP layout whose TP divides the padded vocab; --tp sets that padding and is
checked against the model's heads and query groups. Nothing is written on any error.
"""

import argparse
import sys
from pathlib import Path

DTYPES = {"auto": None, "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hf-dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel size to pad the vocab for")
    p.add_argument("--pp", type=int, default=1, help="pipeline-parallel size to check against")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="auto", help="auto = keep HF's")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)

    import torch

    from prime_megatron.checkpoint.cli import run_tool
    from prime_megatron.checkpoint.convert import convert_hf_to_megatron

    dtype = getattr(torch, DTYPES[args.dtype]) if DTYPES[args.dtype] else None

    def work() -> str:
        meta = convert_hf_to_megatron(
            args.hf_dir, args.out, args.tp, args.pp, dtype, args.overwrite
        )
        return (
            f"wrote {args.out} ({meta.arch.architecture}, {meta.params_dtype}, "
            f"padded vocab {meta.padded_vocab_size})"
        )

    return run_tool("convert_hf_to_megatron", work)


if __name__ == "__main__":
    sys.exit(main())
