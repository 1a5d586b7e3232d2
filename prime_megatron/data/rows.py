"""Prompt rows: the two accepted layouts, checked field by field, normalised to ``PromptRow``.

PRIME's RL layout (Eurus-2-RL-Data)::

    {"data_source": "numina_olympiads", "ability": "math",
     "prompt": [{"role": "user", "content": "..."}],
     "reward_model": {"style": "rule", "ground_truth": "42"},
     "extra_info": {...}}

Plain layout: ``{"question": "...", "answer": "42"}`` (data_source and ability come from
the data config). Code rows (``ability: code``) carry their tests as ground truth, checked
here too so a broken test spec fails at load time, not mid-training.
"""

import math
from dataclasses import dataclass, field
from typing import Any

from prime_megatron.rewards.testcases import parse_test_suite

ROLES = ("system", "user", "assistant")


class RowError(ValueError):
    """A bad dataset row: names the file, the row (1-based) and the field; row 0 is the
    file as a whole (not readable as its format)."""

    def __init__(self, path: str, row: int, field_name: str, problem: str) -> None:
        where = f"row {row}: field {field_name!r}: " if row else ""
        super().__init__(f"{path}: {where}{problem}")
        self.path, self.row, self.field, self.problem = path, row, field_name, problem


class FieldError(ValueError):
    """A problem with one field; the loader adds file and row to make a ``RowError``."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(problem)
        self.field, self.problem = field_name, problem


@dataclass(frozen=True)
class PromptRow:
    messages: tuple[dict, ...]  # chat messages: {"role", "content"}
    data_source: str
    ability: str
    ground_truth: Any  # str for math; the test spec (JSON str or object) for code
    style: str = "rule"
    extra_info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RowDefaults:
    """What plain-layout rows lack."""

    data_source: str = "plain"
    ability: str = "math"


PLAIN_DEFAULTS = RowDefaults()


def normalize_row(raw: Any, defaults: RowDefaults = PLAIN_DEFAULTS) -> PromptRow:
    """Check ``raw`` and return it as a ``PromptRow``; ``FieldError`` on the first problem."""
    if not isinstance(raw, dict):
        raise FieldError("<row>", f"expected an object, got {type(raw).__name__}")
    if "prompt" in raw:
        return _prime_row(raw)
    if "question" in raw:
        return _plain_row(raw, defaults)
    raise FieldError("prompt", "missing: need 'prompt' (PRIME layout) or 'question' (plain)")


def _prime_row(raw: dict) -> PromptRow:
    messages = _messages(raw["prompt"])
    ability = _text(raw, "ability")
    reward_model = raw.get("reward_model")
    if not isinstance(reward_model, dict):
        raise FieldError("reward_model", f"expected an object, got {_kind(reward_model)}")
    style = reward_model.get("style", "rule")
    if not isinstance(style, str):
        raise FieldError("reward_model.style", f"expected a string, got {_kind(style)}")
    extra_info = raw.get("extra_info") or {}
    if not isinstance(extra_info, dict):
        raise FieldError("extra_info", f"expected an object, got {_kind(extra_info)}")
    return PromptRow(
        messages=messages,
        data_source=_text(raw, "data_source"),
        ability=ability,
        ground_truth=_ground_truth(reward_model, "reward_model.ground_truth", ability),
        style=style,
        extra_info=extra_info,
    )


def _plain_row(raw: dict, defaults: RowDefaults) -> PromptRow:
    question = _text(raw, "question")
    return PromptRow(
        messages=({"role": "user", "content": question},),
        data_source=defaults.data_source,
        ability=defaults.ability,
        ground_truth=_ground_truth(raw, "answer", defaults.ability, key="answer"),
    )


def _messages(prompt: Any) -> tuple[dict, ...]:
    if not isinstance(prompt, list) or not prompt:
        raise FieldError("prompt", f"expected a non-empty list of messages, got {_kind(prompt)}")
    for i, message in enumerate(prompt):
        where = f"prompt[{i}]"
        if not isinstance(message, dict):
            raise FieldError(where, f"expected a message object, got {_kind(message)}")
        if message.get("role") not in ROLES:
            raise FieldError(
                f"{where}.role", f"expected one of {ROLES}, got {message.get('role')!r}"
            )
        if not isinstance(message.get("content"), str):
            raise FieldError(
                f"{where}.content", f"expected a string, got {_kind(message.get('content'))}"
            )
    if not any(m["role"] == "user" for m in prompt):
        raise FieldError("prompt", "has no user message")
    return tuple({"role": m["role"], "content": m["content"]} for m in prompt)


def _text(raw: dict, key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise FieldError(key, f"expected a non-empty string, got {_kind(value)}")
    return value


def _ground_truth(holder: dict, where: str, ability: str, key: str = "ground_truth") -> Any:
    if key not in holder or holder[key] is None:
        raise FieldError(where, "missing")
    value = holder[key]
    if ability == "code":
        try:
            parse_test_suite(value)
        except ValueError as e:
            raise FieldError(where, str(e)) from None
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FieldError(where, f"expected a string or number, got {_kind(value)}")
    # JSON's NaN and a parquet column's missing float both arrive as float nan: as text
    # "nan" it would be a gold answer a policy could be paid for writing.
    if isinstance(value, float) and not math.isfinite(value):
        raise FieldError(where, f"is {value}, not an answer")
    if not str(value).strip():
        raise FieldError(where, "is empty")
    return str(value)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"
