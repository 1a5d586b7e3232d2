"""Convert a prime_megatron Megatron checkpoint back into a Hugging Face checkpoint.

    python tools/convert_megatron_to_hf.py --ckpt CKPT --out HF

Works for checkpoints saved at any TP/PP layout (by the converter or by training). The output
(config.json, tokenizer files, safetensors) loads with transformers and vLLM. Nothing is
written on any error.
"""

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ckpt", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)

    from prime_megatron.checkpoint.cli import run_tool
    from prime_megatron.checkpoint.convert import convert_megatron_to_hf

    def work() -> str:
        convert_megatron_to_hf(args.ckpt, args.out, args.overwrite)
        return f"wrote {args.out}"

    return run_tool("convert_megatron_to_hf", work)


if __name__ == "__main__":
    sys.exit(main())
