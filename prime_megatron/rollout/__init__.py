"""vLLM rollout engine colocated with the trainer (SPMD, ``external_launcher``)."""

from prime_megatron.rollout.config import RolloutConfig
from prime_megatron.rollout.engine import RolloutBatch, RolloutEngine
from prime_megatron.rollout.placement import RolloutPlacement

__all__ = ["RolloutBatch", "RolloutConfig", "RolloutEngine", "RolloutPlacement"]
