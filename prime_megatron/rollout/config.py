"""Configuration of the vLLM rollout engine."""

from __future__ import annotations

from dataclasses import dataclass

from prime_megatron.config import check

DTYPES = ("float32", "bfloat16", "float16")
LOGPROBS_MODES = ("processed_logprobs", "raw_logprobs")
LOAD_FORMATS = ("auto", "dummy")


@dataclass(frozen=True)
class RolloutConfig:
    """How vLLM generates rollouts next to the trainer (one engine per torchrun rank).

    ``tensor_parallel_size`` ranks form one rollout replica; ``world_size / tp`` replicas
    each generate a contiguous share of the prompts (see ``rollout/placement.py``).
    """

    tensor_parallel_size: int = 1  # vLLM TP size per rollout replica
    # The paper's budgets (tokens); longer prompts are skipped, longer answers truncated.
    max_prompt_len: int = 1024
    max_response_len: int = 3072  # tokens a sample may generate before it is cut
    temperature: float = 1.0  # sampling temperature (paper: 1.0)
    top_p: float = 1.0  # nucleus sampling (paper: 1.0 = off)
    dtype: str = "float32"  # vLLM's weights and activations
    kv_cache_gib: float = 1.0  # CPU: KV cache size per rank (vLLM's VLLM_CPU_KVCACHE_SPACE)
    gpu_memory_utilization: float = 0.5  # GPU: share of device memory vLLM may take
    sleep_between_rollouts: bool = False  # GPU only (sleep/wake); a no-op on CPU
    bucket_mb: int = 64  # weight-sync bucket size
    # The sampler's log-probs: after temperature/top_p ("processed", what was sampled from)
    # or of the raw model distribution.
    logprobs_mode: str = "processed_logprobs"
    # "dummy": vLLM starts from random weights (no disk read); a weight sync must come before
    # the first rollout, which ``generate`` enforces.
    load_format: str = "auto"
    # None: eager on CPU (torch.compile costs ~50 s per process start there), compiled and
    # CUDA graphs on GPU.
    enforce_eager: bool | None = None
    enable_prefix_caching: bool = True  # vLLM's prefix cache, reset after every weight sync

    def validate(self) -> None:
        check(self.tensor_parallel_size >= 1, "rollout.tensor_parallel_size",
              self.tensor_parallel_size, "must be >= 1")  # fmt: skip
        check(self.max_prompt_len >= 1, "rollout.max_prompt_len", self.max_prompt_len, ">= 1")
        check(self.max_response_len >= 1, "rollout.max_response_len", self.max_response_len,
              ">= 1")  # fmt: skip
        check(self.temperature > 0, "rollout.temperature", self.temperature,
              "must be > 0 (greedy decoding is for verification, not rollouts)")  # fmt: skip
        check(0 < self.top_p <= 1, "rollout.top_p", self.top_p, "must be in (0, 1]")
        check(self.dtype in DTYPES, "rollout.dtype", self.dtype, f"one of {DTYPES}")
        check(self.kv_cache_gib > 0, "rollout.kv_cache_gib", self.kv_cache_gib, "must be > 0")
        check(0 < self.gpu_memory_utilization <= 1, "rollout.gpu_memory_utilization",
              self.gpu_memory_utilization, "must be in (0, 1]")  # fmt: skip
        check(self.bucket_mb >= 1, "rollout.bucket_mb", self.bucket_mb, "must be >= 1")
        check(self.logprobs_mode in LOGPROBS_MODES, "rollout.logprobs_mode",
              self.logprobs_mode, f"one of {LOGPROBS_MODES}")  # fmt: skip
        check(self.load_format in LOAD_FORMATS, "rollout.load_format", self.load_format,
              f"one of {LOAD_FORMATS}")  # fmt: skip

    def check_world(self, world_size: int) -> None:
        """The rollout TP size must divide the torchrun world (whole replicas only)."""
        check(world_size % self.tensor_parallel_size == 0, "rollout.tensor_parallel_size",
              self.tensor_parallel_size, f"must divide the world size {world_size}")  # fmt: skip

    @property
    def bucket_bytes(self) -> int:
        return self.bucket_mb * 2**20

    @property
    def max_model_len(self) -> int:
        return self.max_prompt_len + self.max_response_len
