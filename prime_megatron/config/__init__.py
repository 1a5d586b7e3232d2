"""Component configs: dataclasses loaded from YAML with ``key=value`` overrides."""

from prime_megatron.config.errors import ConfigError, check

__all__ = ["ConfigError", "check"]
