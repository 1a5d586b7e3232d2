"""Plan a run before renting a cluster: per-rank memory of each part, per phase, whether it
fits, and a rough step time from FLOPs at an assumed MFU. Estimates, not measurements.

    python tools/plan.py --config configs/qwen25_math_7b_prime.yaml --gpus 8 --gpu-mem-gb 80 \\
        --hf-config tools/hf_configs/qwen2.5-math-7b.json [section.field=value ...]

The model comes from --hf-config (a config.json; no weights needed), else from the config's
model.source (synthetic: its model.* shape; megatron: the checkpoint's prime_megatron.json;
hf: the model dir's config.json). Formulas: prime_megatron/planning/.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", help="training YAML (default: configs/tiny_cpu.yaml)")
    p.add_argument("--gpus", type=int, required=True, help="devices in the job (world size)")
    p.add_argument(
        "--gpu-mem-gb",
        type=float,
        required=True,
        help="memory per device in GiB (on --platform cpu: host memory per rank)",
    )
    p.add_argument("--hf-config", type=Path, help="the model's HF config.json (no weights)")
    p.add_argument("--platform", choices=("gpu", "cpu"), default="gpu")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="dense bf16 peak per device (H100 SXM 989, A100 312)",
    )
    p.add_argument("--mfu", type=float, default=0.35, help="assumed MFU of training passes")
    p.add_argument("--rollout-mfu", type=float, default=0.10, help="assumed MFU of generation")
    p.add_argument("--prompt-tokens", type=float, help="mean prompt length (default: max)")
    p.add_argument("--response-tokens", type=float, help="mean response length (default: max)")
    p.add_argument(
        "--runtime-gb",
        type=float,
        default=2.0,
        help="per-rank CUDA context, NCCL and allocator slack, GiB (a guess)",
    )
    p.add_argument("overrides", nargs="*", help="section.field=value overrides")  # fmt: skip
    return p.parse_args(argv)


def count(n: int) -> str:
    return f"{n / 1e9:.3f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


class Unit:
    """GiB for real devices, MiB below 16 GiB (tiny CPU jobs), two decimals either way."""

    def __init__(self, device_bytes: int) -> None:
        self.name, self.scale = ("GiB", 2**30) if device_bytes >= 16 * 2**30 else ("MiB", 2**20)

    def __call__(self, n: float) -> str:
        return f"{n / self.scale:.2f}"


def print_header(arch, inp, source: str, vocab: int, where: str, prm_arch=None) -> None:
    from prime_megatron.planning.params import total_params

    print(f"plan: {where} on {inp.gpus} x {inp.device_bytes / 2**30:g} GiB ({inp.platform}), "
          f"TP={inp.tp} PP={inp.pp} DP={inp.dp}; vLLM TP={inp.rollout_tp} "
          f"({inp.gpus // inp.rollout_tp} replica(s))")  # fmt: skip
    print(f"model ({source}): {arch.architecture}, {count(total_params(arch))} params, "
          f"hidden {arch.hidden_size}, {arch.num_layers} layers, {arch.num_attention_heads} "
          f"heads / {arch.num_query_groups} kv, ffn {arch.ffn_hidden_size}, vocab "
          f"{arch.vocab_size} (padded {vocab}), {inp.dtype_bytes}-byte weights")  # fmt: skip
    models = (
        ["policy"]
        + (["PRM"] if inp.use_prm else [])
        + (["reference"] if inp.with_reference else [])
    )
    if prm_arch is not None and inp.use_prm:  # prm_model: a start of its own
        models.append("the PRM's own reference")
        print(f"PRM (prm_model): {count(total_params(prm_arch))} params, hidden "
              f"{prm_arch.hidden_size}, {prm_arch.num_layers} layers")  # fmt: skip
    print(f"models: {', '.join(models)}; micro-batch {inp.micro_batch_size} x {inp.seq_len} "
          f"tokens; offload_idle {'on' if inp.offloads else 'off'}; vLLM sleeps between "
          f"rollouts: {'yes' if inp.sleeps else 'no'}")  # fmt: skip


def print_parts(plan, u: Unit) -> None:
    stages = plan.stages
    print(
        f"\nper-rank parts ({u.name})" + "".join(f"{'stage ' + str(s.stage):>12}" for s in stages)
    )
    for name in stages[0].parts:
        print(f"  {name:<34}" + "".join(f"{u(s.parts[name]):>12}" for s in stages))
    v = plan.vllm
    kv_tokens = v.kv_cache // v.kv_bytes_per_token
    rows = [
        ("vLLM weights", v.weights),
        ("vLLM profiling activations", v.activations),
        (f"vLLM KV cache ({kv_tokens} tokens)", v.kv_cache),
        ("vLLM awake, total", v.total),
    ]
    for name, n in rows:
        print(f"  {name:<34}{u(n):>12}")
    need = plan.inputs.sequences_per_replica
    print(
        f"  KV cache holds {v.sequences} sequences of {v.max_model_len} tokens at once; "
        f"a replica generates {need} per rollout"
    )


def print_phases(plan, u: Unit) -> None:
    from prime_megatron.planning.memory import COLUMNS

    device = plan.inputs.device_bytes
    for stage in plan.stages:
        print(f"\nstage {stage.stage}, per rank ({u.name})")
        print(f"  {'phase':<24}" + "".join(f"{c:>12}" for c in COLUMNS) + f"{'total':>9}  use")
        for ph in stage.phases:
            cells = "".join(f"{u(ph.columns[c]):>12}" for c in COLUMNS)
            print(f"  {ph.name:<24}{cells}{u(ph.total):>9}  {ph.total / device:4.0%}")
        print(f"  peak: {stage.peak.name}, {u(stage.peak.total)} {u.name}")


def print_verdict(plan, u: Unit) -> None:
    peak, device = plan.peak_bytes, plan.inputs.device_bytes
    verdict = "FITS" if plan.fits else "DOES NOT FIT"
    why = "" if plan.vllm.sequences >= 1 else " (vLLM's KV cache cannot hold one sequence)"
    print(
        f"\n{verdict}: peak {u(peak)} of {u(device)} {u.name} per rank ({peak / device:.0%}){why}"
    )


def print_time(arch, inp, args, prm_arch=None) -> None:
    from prime_megatron.planning.flops import step_time

    prompt = args.prompt_tokens or inp.max_prompt_len
    response = args.response_tokens or inp.max_response_len
    t = step_time(arch, inp, args.peak_tflops * 1e12, args.mfu, args.rollout_mfu, prompt, response,
                  prm_arch)  # fmt: skip
    print(f"\nstep time at {args.peak_tflops:g} TFLOP/s per device, MFU {args.mfu:g} "
          f"(rollout {args.rollout_mfu:g}); {inp.prompts_generated} prompts x "
          f"{inp.samples_per_prompt} rolled out ({prompt:g} + {response:g} tokens), "
          f"{inp.samples_per_step} trained at width {inp.seq_len}:")  # fmt: skip
    for name, sec in t.seconds.items():
        print(f"  {name:<14}{t.flops[name] / 1e15:>10.4g} PFLOP {sec:>8.3g} s")
    print(
        f"  {'total':<14}{sum(t.flops.values()) / 1e15:>10.4g} PFLOP "
        f"{t.total_seconds:>8.3g} s (+ weight sync, verifiers, offload copies)"
    )


def main(argv: list[str] | None = None) -> int:
    # Megatron (imported by the config) announces its CPU fallbacks; not a planning matter.
    warnings.filterwarnings("ignore", message=".*(Apex|Transformer Engine).*")
    from prime_megatron.config.errors import ConfigError
    from prime_megatron.planning.inputs import plan_inputs, validate_for_plan
    from prime_megatron.planning.memory import plan_memory
    from prime_megatron.planning.source import resolve_model, resolve_prm_model
    from prime_megatron.trainer.config import load_train_config

    args = parse_args(argv)
    try:
        cfg = load_train_config(args.config, args.overrides)
        validate_for_plan(cfg, args.gpus)
        arch, vocab, source = resolve_model(cfg, args.hf_config)
        inp = plan_inputs(cfg, args.gpus, args.gpu_mem_gb, args.platform, vocab, args.runtime_gb)
        prm_arch = resolve_prm_model(cfg)
        plan = plan_memory(arch, inp, prm_arch)
    except (ConfigError, ValueError) as e:  # checkpoint and arch errors are ValueErrors
        print(f"plan: error: {e}", file=sys.stderr)
        return 2
    print_header(arch, inp, source, plan.padded_vocab, args.config or "default job", prm_arch)
    unit = Unit(inp.device_bytes)
    print_parts(plan, unit)
    print_phases(plan, unit)
    print_verdict(plan, unit)
    print_time(arch, inp, args, prm_arch)
    print("\nestimates: formulas in prime_megatron/planning/, checked on CPU (docs/planning.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
