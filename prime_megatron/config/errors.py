"""The one error type for bad configuration, with messages that name field, value and rule."""

import os
from pathlib import Path
from typing import Any

# Bytes in one path component on Linux and macOS file systems (ext4, xfs, btrfs, apfs).
NAME_MAX = 255


class ConfigError(ValueError):
    """A config field holds a value that is not allowed."""


def check(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise ``ConfigError`` naming ``field``, its ``value`` and the rule unless ``ok``."""
    if not ok:
        raise ConfigError(f"{field}={value!r} is invalid: {allowed}")


def check_dir_path(field: str, value: str) -> None:
    """A directory the run creates (or reuses) at ``value``: checked before anything heavy,
    since ``mkdir`` would only fail once the run has started."""
    check(bool(value), field, value, "a non-empty path")
    for part in Path(value).parts:
        size = len(os.fsencode(part))
        check(size <= NAME_MAX, field, value,
              f"each path component at most {NAME_MAX} bytes; one has {size}")  # fmt: skip
    existing = Path(value)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    check(existing.is_dir(), field, value, f"a directory path, but {existing} is a file")
