"""A rough step time: each phase's FLOPs divided by the cluster's FLOP/s at an assumed MFU.

Forward FLOPs per token = 2 N + 4 L (heads d) c: N the matmul weights (``matmul_params``),
c the keys a query attends to on average (causal: (s + 1) / 2 for a full sequence; a
decoded token sees its prompt and half its response on average). Backward = 2 x forward.
Training passes run over the padded batch width (padding is computed too). Rollouts:
each prompt is prefilled once (its K samples share it through the prefix cache), each
sample decodes its response. Not counted: weight sync, offload copies, verifiers, the
pipeline bubble and communication (all folded into the MFU you assume).
"""

from __future__ import annotations

from dataclasses import dataclass

from prime_megatron.models.arch import ModelArch
from prime_megatron.planning.inputs import PlanInputs
from prime_megatron.planning.params import matmul_params


def forward_flops_per_token(arch: ModelArch, context: float) -> float:
    attention = 4 * arch.num_layers * arch.num_attention_heads * arch.head_dim * context
    return 2 * matmul_params(arch) + attention


@dataclass(frozen=True)
class StepTime:
    flops: dict[str, float]  # phase -> FLOPs per step, whole cluster
    seconds: dict[str, float]

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def phase_flops(
    arch: ModelArch, inp: PlanInputs, prompt_tokens: float, response_tokens: float,
    prm_arch: ModelArch | None = None,
) -> dict[str, float]:  # fmt: skip
    """FLOPs per RL step by phase; ``prompt_tokens`` / ``response_tokens`` are the means
    rolled out (the training width is the padded batch, ``inp.seq_len``). ``prm_arch``: the
    PRM's own shape (``prm_model``), for the PRM and its own reference."""
    s = inp.seq_len

    def train_fwd(model: ModelArch) -> float:
        return inp.samples_per_step * s * forward_flops_per_token(model, (s + 1) / 2)

    prm = prm_arch or arch
    prefill = prompt_tokens * forward_flops_per_token(arch, (prompt_tokens + 1) / 2)
    decode = (
        inp.samples_per_prompt
        * response_tokens
        * forward_flops_per_token(arch, prompt_tokens + response_tokens / 2)
    )
    policy_forwards = int(inp.policy_forward) + int(inp.with_reference)  # policy, ref
    prm_forwards = inp.prm_extra_forwards + int(inp.use_prm and prm_arch is not None)  # prm_ref
    flops = {
        "rollout": inp.prompts_generated * (prefill + decode),
        "logprobs": policy_forwards * train_fwd(arch) + prm_forwards * train_fwd(prm),
        "policy_update": 3 * train_fwd(arch),
    }
    if inp.use_prm:
        flops["prm_update"] = inp.prm_epochs * 3 * train_fwd(prm)
    return flops


def step_time(
    arch: ModelArch,
    inp: PlanInputs,
    peak_flops: float,
    mfu: float,
    rollout_mfu: float,
    prompt_tokens: float,
    response_tokens: float,
    prm_arch: ModelArch | None = None,
) -> StepTime:
    """Seconds per phase on ``inp.gpus`` devices of ``peak_flops`` each; generation is
    memory-bound, hence its own (lower) ``rollout_mfu``."""
    flops = phase_flops(arch, inp, prompt_tokens, response_tokens, prm_arch)
    cluster = inp.gpus * peak_flops
    seconds = {
        name: f / (cluster * (rollout_mfu if name == "rollout" else mfu))
        for name, f in flops.items()
    }
    return StepTime(flops, seconds)
