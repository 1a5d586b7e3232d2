"""HF -> Megatron -> HF conversion throughput vs a plain safetensors load+save of the same bytes.

    python benchmarks/convert.py [--preset qwen2.5-0.5b|small] [--dtype bfloat16]

The default is Qwen2.5-0.5B's shape (random weights, untied head). Prints one JSON line;
``ratio`` is conversion time (both directions) over raw I/O time (load+save, twice, to match the two
directions). Target: ratio <= 2.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from prime_megatron.evidence.provenance import record


def make_random_hf_dir(out: Path, args) -> int:
    from transformers import AutoModelForCausalLM

    from prime_megatron.checkpoint.hf_io import write_hf_weights
    from prime_megatron.models.hf_factory import PRESETS, hf_config

    # Untied on purpose: the conversion then moves the output layer too.
    cfg = hf_config("Qwen2ForCausalLM", **{**PRESETS[args.preset], "tie_word_embeddings": False})
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in AutoModelForCausalLM.from_config(cfg).state_dict().items()}
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen).to(dtype) for k, s in shapes.items()}
    out.mkdir(parents=True)
    cfg.save_pretrained(out)
    write_hf_weights(out, state)
    return sum(t.numel() * t.element_size() for t in state.values())


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="qwen2.5-0.5b", choices=["qwen2.5-0.5b", "small"])
    p.add_argument("--dtype", default="bfloat16")
    args = p.parse_args()

    # Imported before timing: python start-up is not conversion throughput.
    from prime_megatron.checkpoint.convert import convert_hf_to_megatron, convert_megatron_to_hf
    from prime_megatron.checkpoint.hf_io import read_hf_state_dict, write_hf_weights

    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp)
        nbytes = make_random_hf_dir(tmp / "hf", args)

        def raw_io(i: int) -> None:
            (tmp / f"raw{i}").mkdir()
            write_hf_weights(tmp / f"raw{i}", read_hf_state_dict(tmp / "hf"))

        raw = timed(lambda: raw_io(0)) + timed(lambda: raw_io(1))
        to_meg = timed(lambda: convert_hf_to_megatron(tmp / "hf", tmp / "meg"))
        to_hf = timed(lambda: convert_megatron_to_hf(tmp / "meg", tmp / "hf2"))
        a, b = read_hf_state_dict(tmp / "hf"), read_hf_state_dict(tmp / "hf2")
        exact = set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    gb = nbytes / 1e9
    params_m = nbytes * 8 / torch.finfo(getattr(torch, args.dtype)).bits / 1e6
    print(json.dumps({
        "benchmark": "convert", **record(config=args), "params_m": round(params_m, 1),
        "gbytes": round(gb, 3), "round_trip_bit_exact": exact,
        "hf_to_megatron_s": round(to_meg, 2), "megatron_to_hf_s": round(to_hf, 2),
        "raw_load_save_x2_s": round(raw, 2),
        "convert_gbps": round(2 * gb / (to_meg + to_hf), 3), "raw_gbps": round(2 * gb / raw, 3),
        "ratio_convert_over_raw": round((to_meg + to_hf) / raw, 2), "target_ratio": 2.0,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
