"""Data configuration: files, row checking, prompt format, shuffling."""

import os
from dataclasses import dataclass, field
from string import Formatter

from prime_megatron.config.errors import check

from .files import FORMATS
from .rows import RowDefaults

PROMPT_FORMATS = ("chat", "plain")
TEMPLATE_FIELDS = ("prompt", "system")  # what data.plain_template may name


@dataclass(frozen=True)
class DataConfig:
    # Jsonl or parquet rows (Eurus-2-RL-Data format or question/answer).
    train_files: list[str] = field(default_factory=list)
    val_files: list[str] = field(default_factory=list)  # held-out rows for evaluation
    skip_bad_rows: bool = False  # True: drop and count bad rows instead of failing
    prompt_format: str = "chat"  # chat: tokenizer's template; plain: plain_template
    plain_template: str = "{prompt}\n"  # {prompt}: last user message, {system}: system
    shuffle: bool = True  # shuffle the training rows (resumable order)
    seed: int = 1  # seed of the shuffle
    default_data_source: str = "plain"  # for {"question", "answer"} rows
    default_ability: str = "math"  # for {"question", "answer"} rows

    def validate(self) -> None:
        check(bool(self.train_files), "data.train_files", self.train_files, "at least one file")
        for name in ("train_files", "val_files"):
            for path in getattr(self, name):
                check(path.endswith(FORMATS), f"data.{name}", path, f"files ending in {FORMATS}")
                check(os.path.isfile(path), f"data.{name}", path, "an existing file")
        check(
            self.prompt_format in PROMPT_FORMATS,
            "data.prompt_format",
            self.prompt_format,
            f"one of {PROMPT_FORMATS}",
        )
        check(
            "{prompt}" in self.plain_template,
            "data.plain_template",
            self.plain_template,
            "a template containing {prompt}",
        )
        self._check_template_fields()
        check(bool(self.default_data_source), "data.default_data_source", "", "non-empty")
        check(bool(self.default_ability), "data.default_ability", "", "non-empty")

    def _check_template_fields(self) -> None:
        """Every placeholder is {prompt} or {system}: another, or a stray brace, would
        otherwise raise on the first prompt rendered, after the run has started."""
        try:
            names = {f for _, f, _, _ in Formatter().parse(self.plain_template) if f is not None}
            unknown = sorted(names - set(TEMPLATE_FIELDS))
            problem = f"unknown placeholder {{{unknown[0]}}}" if unknown else ""
        except ValueError as e:
            problem = f"not a format string ({e})"
        allowed = "allowed: {prompt}, {system} (a literal brace is written {{ or }})"
        check(not problem, "data.plain_template", self.plain_template, f"{problem}; {allowed}")

    def row_defaults(self) -> RowDefaults:
        return RowDefaults(self.default_data_source, self.default_ability)
