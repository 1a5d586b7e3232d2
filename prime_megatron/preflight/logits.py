"""Check 4: the start model, mapped to Megatron as the trainer maps it, agrees with HF
transformers and with vLLM, on a reduced-depth copy (``reduced_model.py``) and one
rendered prompt. One process, TP=1, on the host, every side in fp32.

* transformers vs Megatron: next-token logits at every prompt position; the largest
  |difference| must stay within ``LOGITS_RTOL`` x the largest |logit| (at least
  ``LOGITS_RTOL``); argmax agreement is reported alongside.
* vLLM vs Megatron: vLLM starts from the reduced config alone and gets Megatron's weights
  by the trainer's weight sync; the log-probs of vLLM's greedy continuation are compared
  with Megatron's for the same tokens (resharding/verify.py), within ``VLLM_LOGP_TOL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from prime_megatron.checkpoint.convert import InMemoryHFCheckpoint, arch_of
from prime_megatron.data.rows import PromptRow
from prime_megatron.distributed.init import initialize_parallel, seed_all
from prime_megatron.models.forward import full_logits
from prime_megatron.preflight.reduced_model import write_reduced_model
from prime_megatron.preflight.report import FAIL, PASS, Check
from prime_megatron.trainer.collect import PromptEncoder
from prime_megatron.trainer.inputs import StartModel

TITLE = "model mapping and logits"
# fp32 on both sides: kernels differ only in summation order, ~1e-6 relative per op.
LOGITS_RTOL = 1e-4
VLLM_LOGP_TOL = 1e-3  # tools/verify_weight_sync.py's bound for fp32 checkpoints
MAX_PROMPT_TOKENS = 128  # the prompt's head: a full-vocab forward stays cheap on a CPU
NEW_TOKENS = 8  # vLLM's greedy continuation


@dataclass(frozen=True)
class LogitsDiff:
    positions: int
    max_abs_diff: float
    scale: float  # the reference's largest |logit|
    argmax_agree: int  # positions whose top token is the same

    @property
    def tolerance(self) -> float:
        return LOGITS_RTOL * max(1.0, self.scale)

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def describe(self) -> str:
        return (
            f"transformers vs Megatron: max |dlogit| {self.max_abs_diff:.2e} (tolerance "
            f"{self.tolerance:.1e} = {LOGITS_RTOL:g} x max |logit| {self.scale:.3g}), argmax "
            f"agrees at {self.argmax_agree}/{self.positions} positions"
        )


def compare_logits(reference: torch.Tensor, candidate: torch.Tensor) -> LogitsDiff:
    """Both [positions, vocab]."""
    if reference.shape != candidate.shape:
        raise ValueError(f"logits of shape {tuple(candidate.shape)}, expected "
                         f"{tuple(reference.shape)}")  # fmt: skip
    reference, candidate = reference.double(), candidate.double()
    return LogitsDiff(
        positions=reference.shape[0],
        max_abs_diff=(reference - candidate).abs().max().item(),
        scale=reference.abs().max().item(),
        argmax_agree=int((reference.argmax(-1) == candidate.argmax(-1)).sum()),
    )


@dataclass(frozen=True)
class ModelAgreement:
    layers: int
    total_layers: int
    prompt_tokens: int
    logits: LogitsDiff
    vllm: dict | None  # ``logprob_mismatch`` statistics; None when vLLM was skipped

    @property
    def vllm_ok(self) -> bool:
        return self.vllm is None or self.vllm["abs_max"] <= VLLM_LOGP_TOL

    def check(self) -> Check:
        ok = self.logits.ok and self.vllm_ok
        summary = (
            f"first {self.layers} of {self.total_layers} layers, {self.prompt_tokens}-token "
            f"prompt: {'agree' if ok else 'DISAGREE'} within fp32 tolerance"
        )
        if self.vllm is None:
            vllm = "vLLM: skipped (--no-vllm)"
        else:
            vllm = (
                f"vLLM vs Megatron: max |dlogp| {self.vllm['abs_max']:.2e} over "
                f"{self.vllm['n_tokens']} greedy tokens (tolerance {VLLM_LOGP_TOL:g})"
            )
        return Check(TITLE, PASS if ok else FAIL, summary, (self.logits.describe(), vllm))


def parity_prompt(rows: Sequence[PromptRow], encode: PromptEncoder) -> list[int]:
    """The first row's prompt that fits ``rollout.max_prompt_len`` (else the first row's),
    its first ``MAX_PROMPT_TOKENS`` tokens."""
    prompts = (encode.token_ids(row.messages) for row in rows)
    fitting = next((ids for ids in prompts if len(ids) <= encode.max_prompt_len), None)
    return (fitting or encode.token_ids(rows[0].messages))[:MAX_PROMPT_TOKENS]


def model_agreement(
    start: StartModel, prompt_ids: list[int], layers: int, work_dir: Path, with_vllm: bool
) -> ModelAgreement:
    """Write the first ``layers`` layers of ``start`` under ``work_dir`` and compare the
    three implementations on ``prompt_ids`` (cut to fit the model's positions)."""
    arch = arch_of(start.hf_config, start.path)
    layers = min(layers, arch.num_layers)
    prompt_ids = prompt_ids[: arch.max_position_embeddings - NEW_TOKENS]
    reduced = write_reduced_model(start, layers, work_dir / "reduced")
    tokens = torch.tensor([prompt_ids])
    reference = _transformers_logits(reduced, tokens)
    source = InMemoryHFCheckpoint(reduced, 1, 1, torch.float32)
    small = source.meta.arch
    parallel = initialize_parallel(1, 1)
    seed_all(0, parallel)  # Megatron's attention forks its model-parallel RNG stream
    model = source.load(parallel)
    del source  # its mapped tensors: the model holds its own copy, vLLM is still to come
    logits = compare_logits(reference, full_logits(model, parallel, tokens, small.vocab_size)[0])
    vllm = _vllm_mismatch(model, parallel, small, reduced, prompt_ids) if with_vllm else None
    return ModelAgreement(layers, arch.num_layers, len(prompt_ids), logits, vllm)


def _transformers_logits(hf_dir: Path, tokens: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(tokens).logits[0]


def _vllm_mismatch(model, parallel, arch, hf_dir: Path, prompt_ids: list[int]) -> dict:
    """vLLM started the way the trainer starts it (config only, then a weight sync)."""
    from prime_megatron.resharding import sync_weights
    from prime_megatron.resharding.verify import batch_mismatch
    from prime_megatron.rollout import RolloutConfig, RolloutEngine

    cfg = RolloutConfig(max_prompt_len=len(prompt_ids), max_response_len=NEW_TOKENS,
                        dtype="float32", kv_cache_gib=0.25, load_format="dummy")  # fmt: skip
    engine = RolloutEngine(hf_dir, cfg)
    sync_weights(model, parallel, arch, engine, cfg.bucket_bytes)
    greedy = engine.greedy([prompt_ids], NEW_TOKENS)
    return batch_mismatch(model, parallel, greedy, arch.vocab_size, temperature=1.0)
