"""prime_megatron: PRIME (implicit process rewards) RL training on Megatron-core."""

__version__ = "0.1.0"
