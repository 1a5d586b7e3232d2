"""Benchmark: training forward+backward tokens/s, our Megatron GPTModel vs plain PyTorch (CPU).

    python benchmarks/train_step.py            # the tiny default model and a ~25M one
    python benchmarks/train_step.py --quick    # fewer repetitions, smaller batches

Ours: the project's ``GPTModel`` (``build_gpt_model``, local spec, TP=PP=1 in a gloo world
of one) driven by ``passes.run.run_pass`` with a loss, as the trainer's updates use it:
Megatron's pipeline schedule over micro-batches, the chunked log-prob kernel, backward.
Plain: transformers ``Qwen2ForCausalLM`` (its default attention) with the same weights,
mapped HF -> Megatron by ``prime_megatron.checkpoint``; the same micro-batches, each one
forward, the same log-prob kernel, the same loss, backward. Both get the same
``SampleBatch`` (prompt + response rows, right-padded; the same length-sorted, trimmed
micro-batches) and the same thread count; the loss is minus the mean response-token
log-prob.

Megatron's output layer holds the padded vocab (a multiple of 128); ``run_pass`` masks the
padding columns out of the softmax, so both sides compute one function. Before timing, the
two must agree: response log-probs, loss and the decoder layers' gradient norm (else the
script stops).

Models: ``configs/tiny_cpu.yaml``'s (synthetic char tokenizer vocab), the same config
at hidden 512, 6 layers, 8 heads, ffn 2048 (~25M parameters), and Qwen2.5-0.5B's shape at 2
layers with its real 151,936-token vocabulary (``--models qwen0.5b_2l``). Time = median over
``--repeats`` steps, the two sides alternating, after one warm-up step each; tokens/s counts
every position of the padded batch (the trimmed micro-batches compute fewer). Prints one
JSON line; ``ratio`` = ours / plain tokens/s (wall time), ``ratio_cpu`` the same from
process CPU time.
"""

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from prime_megatron.config.loader import load_config
from prime_megatron.data.tokenizer import build_char_tokenizer
from prime_megatron.distributed.init import initialize_parallel, seed_all, shutdown_distributed
from prime_megatron.evidence.provenance import record
from prime_megatron.kernels import token_logprobs
from prime_megatron.models.arch import ModelArch
from prime_megatron.passes.batch import IGNORE, Group, SampleBatch
from prime_megatron.passes.micro import ragged_micro_batches
from prime_megatron.passes.run import run_pass
from prime_megatron.trainer.config import TrainConfig
from prime_megatron.trainer.inputs import synthetic_hf_config

CONFIG = "configs/tiny_cpu.yaml"


def synthetic(overrides: list[str]) -> Callable[[], object]:
    """The default job's model shape with ``overrides``, as a transformers config."""

    def make():
        from transformers import Qwen2Config

        cfg = load_config(TrainConfig, CONFIG, overrides)
        return Qwen2Config.from_dict(synthetic_hf_config(cfg, build_char_tokenizer()))

    return make


def real(preset: str, layers: int) -> Callable[[], object]:
    """A real model's shape and vocabulary (``hf_factory.PRESETS``), ``layers`` deep."""
    from prime_megatron.models.hf_factory import PRESETS, hf_config

    return lambda: hf_config(**{**PRESETS[preset], "num_hidden_layers": layers})


# name -> (transformers config, (prompts, K, micro-batch size) full, the same for --quick)
MODELS = {
    "tiny": (synthetic([]), (16, 4, 16), (4, 4, 8)),
    "25m": (
        synthetic(["model.hidden_size=512", "model.num_layers=6", "model.num_heads=8",
                   "model.ffn_hidden_size=2048"]),
        (4, 4, 8), (2, 4, 4),
    ),
    # Qwen2.5-0.5B at 2 layers: the 151,936-token vocabulary dominates the cost.
    "qwen0.5b_2l": (real("qwen2.5-0.5b", 2), (4, 4, 4), (1, 4, 4)),
}  # fmt: skip
TARGET_RATIO = 0.8
LOGP_ATOL = 1e-4
REL_TOL = 1e-4


def make_batch(prompts: int, k: int, vocab: int, pad_id: int, seed: int = 0) -> SampleBatch:
    """Rollout-shaped rows: prompts of 20-32 tokens, responses of 24-64 (the tiny config's
    max_prompt_len / max_response_len), random ids of the real vocab."""
    gen = torch.Generator().manual_seed(seed)

    def ids(lo: int, hi: int) -> list[int]:
        n = int(torch.randint(lo, hi + 1, (), generator=gen))
        return torch.randint(4, vocab, (n,), generator=gen).tolist()  # 0-3: special tokens

    groups = []
    for i in range(prompts):
        responses = [ids(24, 64) for _ in range(k)]
        logps = [[0.0] * len(r) for r in responses]
        groups.append(Group(ids(20, 32), responses, logps, [False] * k, [0.0] * k, i, 0))
    return SampleBatch.from_groups(groups, pad_id)


def build_pair(config, parallel) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(Megatron GPTModel, the transformers model of ``config`` with the same weights)."""
    from prime_megatron.checkpoint.convert import load_full_hf_state
    from prime_megatron.models.builder import build_gpt_model, padded_vocab_size
    from prime_megatron.models.hf_factory import random_hf_model

    arch = ModelArch.from_hf_config(config.to_dict())
    hf = random_hf_model(config, seed=0).train()
    padded = padded_vocab_size(arch.vocab_size, parallel.tp_size)
    ours = build_gpt_model(arch, parallel, padded_vocab=padded, init_weights=False)
    state = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    load_full_hf_state(ours, state, arch, padded, torch.float32, "random transformers model")
    return ours, hf


def mean_logp_loss(total: float) -> Callable:
    """run_pass's loss_fn: minus the response log-probs summed, over the batch's count."""

    def loss_fn(logp: torch.Tensor, _ent, mb: SampleBatch):
        return -(logp * mb.mask).sum() / total, {}

    return loss_fn


def ours_step(model, parallel, batch: SampleBatch, mbs: int, vocab: int) -> torch.Tensor:
    loss_fn = mean_logp_loss(batch.mask.sum().item())
    return run_pass(model, parallel, batch, mbs, loss_fn=loss_fn, vocab_size=vocab).logp


def plain_step(model, batch: SampleBatch, mbs: int) -> torch.Tensor:
    """The same loss and micro-batches (rows sorted by length, each micro-batch trimmed to
    its longest, as ``run_pass`` lays them out without PP) through transformers, gradients
    accumulated."""
    total, out = batch.mask.sum().item(), torch.zeros_like(batch.mask)
    for rows, width in ragged_micro_batches(batch.lengths(), mbs, batch.tokens.shape[1]):
        mb = batch.select(rows).trimmed(width)
        logits = model(mb.tokens).logits[:, :-1]
        logp = token_logprobs(logits, mb.labels, 1.0, IGNORE)
        (-(logp * mb.mask).sum() / total).backward()
        out[rows, : width - 1] = logp.detach()
    return out


def _layer_grad_norm(model) -> float:
    """Norm of the decoder layers' gradients (the same tensors on both sides)."""
    grads = [p.grad.double().norm() for n, p in model.named_parameters() if ".layers." in n]
    return torch.linalg.vector_norm(torch.stack(grads)).item()


def check_parity(ours, plain, run_ours, run_plain, batch: SampleBatch) -> dict:
    """Both sides' log-probs, loss and layer gradient norm on ``batch``; raise if they differ."""
    lp_ours, lp_plain = run_ours(), run_plain()
    mask = batch.mask.bool()
    diff = (lp_ours - lp_plain)[mask].abs().max().item()
    loss = [-(lp * batch.mask).sum().item() / batch.mask.sum().item() for lp in (lp_ours, lp_plain)]
    norms = [_layer_grad_norm(m) for m in (ours, plain)]
    report = {
        "logp_max_abs_diff": float(f"{diff:.2e}"),
        "loss": round(loss[0], 6),
        "loss_rel_diff": float(f"{abs(loss[0] - loss[1]) / abs(loss[1]):.2e}"),
        "grad_norm_rel_diff": float(f"{abs(norms[0] - norms[1]) / norms[1]:.2e}"),
    }
    rel = max(report["loss_rel_diff"], report["grad_norm_rel_diff"])
    if diff > LOGP_ATOL or rel > REL_TOL:
        raise SystemExit(f"ours and plain PyTorch disagree, no timing: {report}")
    return report


@contextlib.contextmanager
def no_torch_function_modes() -> Iterator[None]:
    """Run the plain side without any TorchFunctionMode a CPU shim left on the stack: its
    cost belongs to our side only."""
    from torch.overrides import _pop_mode, _push_mode

    modes = [_pop_mode() for _ in range(torch._C._len_torch_function_stack())]
    try:
        yield
    finally:
        for mode in reversed(modes):
            _push_mode(mode)


def time_pair(sides: dict[str, Callable[[], object]], models, repeats: int) -> dict[str, dict]:
    """Median wall and process-CPU seconds per step of each side, the sides alternating,
    after one warm-up step each. CPU time (all threads) is the steadier of the two on a
    shared machine: time spent preempted by other processes does not count."""
    times: dict[str, dict[str, list[float]]] = {n: {"s": [], "cpu_s": []} for n in sides}
    for rep in range(repeats + 1):
        for name, fn in sides.items():
            for m in models:
                m.zero_grad(set_to_none=True)
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            if rep:
                times[name]["s"].append(time.perf_counter() - wall)
                times[name]["cpu_s"].append(time.process_time() - cpu)
    return {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}


def bench_model(name: str, parallel, quick: bool, repeats: int) -> dict:
    make_config, full, small = MODELS[name]
    prompts, k, mbs = small if quick else full
    ours, plain = build_pair(make_config(), parallel)
    batch = make_batch(prompts, k, plain.config.vocab_size, plain.config.pad_token_id or 0)

    def run_plain() -> torch.Tensor:
        with no_torch_function_modes():
            return plain_step(plain, batch, mbs)

    vocab = plain.config.vocab_size
    sides = {"ours": lambda: ours_step(ours, parallel, batch, mbs, vocab), "plain": run_plain}
    parity = check_parity(ours, plain, sides["ours"], run_plain, batch)
    secs = time_pair(sides, (ours, plain), repeats)
    tokens = batch.tokens.numel()
    tok_s = {side: tokens / t["s"] for side, t in secs.items()}
    return {
        "params_m": round(sum(p.numel() for p in plain.parameters()) / 1e6, 2),
        "batch": list(batch.tokens.shape),
        "micro_batch": mbs,
        **parity,
        **{f"{side}_{k}": round(v, 4) for side, t in secs.items() for k, v in t.items()},
        **{f"{side}_tok_s": round(v, 1) for side, v in tok_s.items()},
        "ratio": round(tok_s["ours"] / tok_s["plain"], 3),
        "ratio_cpu": round(secs["plain"]["cpu_s"] / secs["ours"]["cpu_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches, 2 repeats")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    parser.add_argument("--threads", type=int, help="torch threads, both sides (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else args.repeats
    results = {"benchmark": "train_step", **record(config=args), "threads": torch.get_num_threads()}
    results["cpus"] = os.cpu_count()
    results["loadavg_1m_before"] = round(os.getloadavg()[0], 2)
    parallel = initialize_parallel(1, 1)
    try:
        seed_all(0, parallel)
        for name in args.models.split(","):
            results[name] = bench_model(name, parallel, args.quick, repeats)
    finally:
        shutdown_distributed()
    results["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    ratios = [results[name]["ratio"] for name in args.models.split(",")]
    results["target_ratio"] = TARGET_RATIO
    results["meets_target"] = all(r >= TARGET_RATIO for r in ratios)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
