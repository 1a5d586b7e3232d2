"""The numbers a plan needs besides the architecture, and how a ``TrainConfig`` gives them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from prime_megatron.config.errors import check
from prime_megatron.trainer.config import TrainConfig

GIB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
PLATFORMS = ("gpu", "cpu")
# passes/batch.py pads every batch to a multiple of this many tokens.
BATCH_PAD_MULTIPLE = 8


@dataclass(frozen=True)
class PlanInputs:
    """One job on ``gpus`` devices of ``device_bytes`` each.

    ``platform`` picks what the code runs there: ``gpu`` the Transformer-Engine layer spec
    (flash attention, fused SwiGLU) and the Triton log-prob kernel; ``cpu`` Megatron's
    local spec (attention scores materialised, unfused SwiGLU), the torch chunked log-prob
    kernel and vLLM's fixed KV cache (``kv_cache_bytes``); offloading is a no-op there.
    """

    gpus: int
    device_bytes: int
    platform: str = "gpu"
    tp: int = 1
    pp: int = 1
    dtype_bytes: int = 2
    padded_vocab: int = 0  # 0: the builder's padding for this TP
    seq_len: int = 128  # batch width: prompt + response, padded
    micro_batch_size: int = 1
    samples_per_step: int = 64  # trained per step: prompts x samples per prompt
    samples_per_prompt: int = 4
    prompts_generated: int = 64  # rolled out per step: oversampled for the online filter
    mini_batches: int = 1
    prm_mini_batches: int = 1
    prm_epochs: int = 1
    prm_extra_forwards: int = 0  # PRM forward-only passes besides its update's own forward
    policy_forward: bool = False  # a policy forward-only pass before the update
    use_prm: bool = True
    with_reference: bool = True
    offload_idle: bool = False
    eval_rollouts: bool = False  # held-out evaluation with every model resident
    resumes: bool = True  # run.resume: a restart loads the moments before the first sync
    rollout_tp: int = 1
    rollout_dtype_bytes: int = 2
    max_prompt_len: int = 64
    max_response_len: int = 64
    gpu_memory_utilization: float = 0.5
    kv_cache_bytes: int = GIB
    sleep_between_rollouts: bool = False
    bucket_bytes: int = 64 * 2**20
    runtime_bytes: int = 2 * GIB  # CUDA context, NCCL, allocator slack (or, on CPU, libraries)

    @property
    def dp(self) -> int:
        return self.gpus // (self.tp * self.pp)

    @property
    def offloads(self) -> bool:
        return self.offload_idle and self.platform == "gpu"

    @property
    def sleeps(self) -> bool:
        return self.sleep_between_rollouts and self.platform == "gpu"

    @property
    def max_model_len(self) -> int:
        return self.max_prompt_len + self.max_response_len

    @property
    def sequences_per_replica(self) -> int:
        """Sequences one vLLM replica is asked for per rollout (its prompts x K)."""
        replicas = self.gpus // self.rollout_tp
        return math.ceil(self.prompts_generated / replicas) * self.samples_per_prompt

    def micro_batches(self, samples: int) -> int:
        """Micro-batches of the largest data-parallel share of ``samples`` (split_even)."""
        return math.ceil(math.ceil(samples / self.dp) / self.micro_batch_size)


def validate_for_plan(cfg: TrainConfig, gpus: int) -> None:
    """The config checks that need no files: a plan is made before weights or data exist."""
    cfg.parallel.validate(gpus)
    cfg.batch.validate()
    cfg.algo.validate()
    cfg.rollout.validate()
    cfg.rollout.check_world(gpus)
    dtype = cfg.model.dtype
    check(dtype in DTYPE_BYTES, "model.dtype", dtype, f"one of {tuple(DTYPE_BYTES)}")


def plan_inputs(
    cfg: TrainConfig,
    gpus: int,
    device_gib: float,
    platform: str = "gpu",
    padded_vocab: int = 0,
    runtime_gib: float = 2.0,
) -> PlanInputs:
    """The plan's numbers for ``cfg`` (not validated against files: no weights needed)."""
    b, r = cfg.batch, cfg.rollout
    width = math.ceil(r.max_model_len / BATCH_PAD_MULTIPLE) * BATCH_PAD_MULTIPLE
    return PlanInputs(
        gpus=gpus,
        device_bytes=int(device_gib * GIB),
        platform=platform,
        tp=cfg.parallel.tensor_parallel,
        pp=cfg.parallel.pipeline_parallel,
        dtype_bytes=DTYPE_BYTES[cfg.model.dtype],
        padded_vocab=padded_vocab,
        seq_len=width,
        micro_batch_size=b.micro_batch_size,
        samples_per_step=b.prompts_per_step * b.samples_per_prompt,
        samples_per_prompt=b.samples_per_prompt,
        prompts_generated=math.ceil(b.prompts_per_step * cfg.algo.oversample_factor),
        mini_batches=b.mini_batches_per_step,
        prm_mini_batches=b.prm_mini_batches_per_step,
        prm_epochs=cfg.algo.prm_epochs,
        prm_extra_forwards=prm_extra_forwards(cfg),
        policy_forward=cfg.algo.sampling_logp == "trainer"
        and cfg.algo.reads_sampling_logp(cfg.use_prm, b.mini_batches_per_step),
        use_prm=cfg.use_prm,
        with_reference=cfg.loads_reference,
        offload_idle=cfg.model.offload_idle,
        eval_rollouts=_evaluates(cfg),
        resumes=cfg.run.resume != "never",
        rollout_tp=r.tensor_parallel_size,
        rollout_dtype_bytes=DTYPE_BYTES[r.dtype],
        max_prompt_len=r.max_prompt_len,
        max_response_len=r.max_response_len,
        gpu_memory_utilization=r.gpu_memory_utilization,
        kv_cache_bytes=int(r.kv_cache_gib * GIB),
        sleep_between_rollouts=r.sleep_between_rollouts,
        bucket_bytes=r.bucket_bytes,
        runtime_bytes=int(runtime_gib * GIB),
    )


def prm_extra_forwards(cfg: TrainConfig) -> int:
    """PRM forward-only passes per step besides the update's (trainer/update.py
    ``_process_rewards``): a scoring pass after the update with ``prm_update=before``;
    ``dpo`` scores the whole batch once more before updating."""
    a = cfg.algo
    if not cfg.use_prm:
        return 0
    return int(a.prm_update == "before") + int(a.prm_loss == "dpo")


def _evaluates(cfg: TrainConfig) -> bool:
    """Held-out evaluation runs (trainer/loop.py ``evaluate``): prompts asked for and a
    held-out file given (the synthetic task writes its own)."""
    held_out = bool(cfg.data.val_files) or cfg.model.source == "synthetic"
    return cfg.run.eval_prompts > 0 and held_out
