"""Nested dataclass configs from YAML plus ``section.field=value`` overrides.

A YAML file may start from another: a top-level ``base: other.yaml`` (a path relative to the
file that names it) loads that file first, and the file's own sections are merged into it
field by field; a chain of bases is followed to its root.

Unknown keys, values of the wrong type, non-finite floats, YAML syntax errors and keys a
mapping repeats are one-line ``ConfigError``s that name the dotted field (or the file /
override), the value and what is allowed; semantic checks are each dataclass's ``validate()``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Hashable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from prime_megatron.config.errors import ConfigError

T = TypeVar("T")


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """Build ``cls`` from defaults <- YAML file (after its bases) <- overrides (later wins)."""
    data = read_yaml_config(Path(path)) if path is not None else {}
    for item in overrides:
        _apply_override(data, item)
    return from_dict(cls, data)


BASE_KEY = "base"


def read_yaml_config(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping a YAML config file describes, its ``base`` chain merged in."""
    if not path.is_file():
        where = f" (the base of {_seen[-1]})" if _seen else ""
        what = "is a directory, not a YAML file" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {path}{where} {what}")
    if path.resolve() in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path.resolve()))
        raise ConfigError(f"config file {path}: its bases form a cycle: {chain}")
    data = _parse_yaml(_read_text(path), str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base={base!r} is invalid: expected a YAML file path")
    parent = read_yaml_config(path.parent / base, (*_seen, path.resolve()))
    return _merge(parent, data)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        both_maps = isinstance(below, dict) and isinstance(value, dict)
        merged[key] = _merge(below, value) if both_maps else value
    return merged


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not of the form section.field=value")
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    node[leaf] = _parse_yaml(raw, f"override {item!r}") if raw.strip() else None


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} cannot be read: {e}") from e


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing a key its mapping already holds: PyYAML keeps the last
    silently, so a section pasted twice would quietly override the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # PyYAML's own construct_mapping reports it
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise _DuplicateKey(
                    f"duplicate key {key!r} at line {line} (first at line {first_line[key]})"
                )
            first_line[key] = line
        return super().construct_mapping(node, deep)


class _DuplicateKey(yaml.YAMLError):
    pass


def _parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` without duplicate keys, with a syntax error as a one-line
    ``ConfigError`` naming ``where`` (PyYAML's own message is multi-line and names the
    source as "<unicode string>")."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except _DuplicateKey as e:
        raise ConfigError(f"{where}: {e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None)
        if problem and mark is not None:
            detail = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        else:
            detail = " ".join(str(e).split())
        raise ConfigError(f"{where}: invalid YAML: {detail}") from e


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "", base: T | None = None) -> T:
    """``cls`` from ``data``; fields ``data`` leaves out keep ``base``'s values (default:
    the field defaults)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown field(s) {[prefix + u for u in unknown]}; allowed: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _coerce(hints[name], value, prefix + name, _default(fields[name], base))
        for name, value in data.items()
    }
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _default(f: dataclasses.Field, base: Any) -> Any:
    """What a field holds before ``data`` sets it. A section's default can differ from its
    class defaults (``algo: AlgoConfig(process_reward_norm="none")``): setting one of its
    fields must keep the others at that default, not reset them to the class's."""
    if base is not None:
        return getattr(base, f.name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _coerce(tp: Any, value: Any, name: str, default: Any = None) -> Any:
    if dataclasses.is_dataclass(tp):
        base = default if isinstance(default, tp) else None
        return from_dict(tp, value or {}, name + ".", base)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(option, value, name)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}={value!r} is invalid: expected a list")
        (inner, *_) = typing.get_args(tp) or (Any,)
        return origin(_coerce(inner, v, f"{name}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        return _mapping(tp, value, name)
    if tp is Any:
        return value
    return _scalar(tp, value, name)


def _mapping(tp: Any, value: Any, name: str) -> dict:
    """A ``dict[K, V]`` field: a mapping whose keys and values are coerced like fields."""
    if not isinstance(value, dict):
        raise ConfigError(f"{name}={value!r} is invalid: expected a mapping, e.g. {{key: value}}")
    key_tp, value_tp = typing.get_args(tp) or (Any, Any)
    return {
        _coerce(key_tp, k, f"{name} key {k!r}"): _coerce(value_tp, v, f"{name}[{k!r}]")
        for k, v in value.items()
    }


def _scalar(tp: type, value: Any, name: str) -> Any:
    if tp is float:
        return _finite_float(value, name)
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{name}={value!r} is invalid: expected {tp.__name__}")
    return value


def _finite_float(value: Any, name: str) -> float:
    """``value`` as a float; inf / nan are refused for every float field at once, because no
    rate, coefficient, bound or timeout means anything (or fails cleanly) when non-finite."""
    number = value
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string; users mean the number.
            number = float(value)
    except ValueError:
        pass  # not a number at all: reported as the wrong type below
    except OverflowError:
        number = math.inf  # an int too large for a float
    if not isinstance(number, float):
        raise ConfigError(f"{name}={value!r} is invalid: expected float")
    if not math.isfinite(number):
        raise ConfigError(f"{name}={value!r} is invalid: expected a finite number")
    return number


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
