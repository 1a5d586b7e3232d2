"""The one error type for bad configuration, with messages that name field, value and rule."""

from typing import Any


class ConfigError(ValueError):
    """A config field holds a value that is not allowed."""


def check(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise ``ConfigError`` naming ``field``, its ``value`` and the rule unless ``ok``."""
    if not ok:
        raise ConfigError(f"{field}={value!r} is invalid: {allowed}")
