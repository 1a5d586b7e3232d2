"""A validated prompt dataset: every row of every file checked when it is loaded."""

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from .files import BadJson, read_rows
from .rows import PLAIN_DEFAULTS, FieldError, PromptRow, RowDefaults, RowError, normalize_row

log = logging.getLogger(__name__)


class EmptyDatasetError(ValueError):
    """Every row of a dataset was bad (and skipped), or its files hold no rows at all."""


class PromptDataset(Sequence):
    """Rows in file order. ``skipped`` counts dropped rows by field (``skip_bad_rows``)."""

    def __init__(self, rows: list[PromptRow], skipped: Counter | None = None) -> None:
        self.rows = rows
        self.skipped = skipped or Counter()

    @classmethod
    def load(
        cls,
        paths: Sequence[str],
        skip_bad_rows: bool = False,
        defaults: RowDefaults = PLAIN_DEFAULTS,
    ) -> "PromptDataset":
        """Load and check all rows; the first bad row raises ``RowError`` (file, row,
        field) unless ``skip_bad_rows``, which drops and counts them instead."""
        raw = ((path, number, row) for path in paths for number, row in read_rows(path))
        return cls._checked_rows(raw, list(paths), skip_bad_rows, defaults)

    @classmethod
    def from_rows(cls, rows: Iterable[Any], name: str) -> "PromptDataset":
        """Rows made in memory (the synthetic task), checked like a file called ``name``."""
        raw = ((name, number, row) for number, row in enumerate(rows, start=1))
        return cls._checked_rows(raw, [name], skip_bad_rows=False, defaults=PLAIN_DEFAULTS)

    @classmethod
    def _checked_rows(
        cls,
        raw: Iterable[tuple[str, int, Any]],
        names: list[str],
        skip_bad_rows: bool,
        defaults: RowDefaults,
    ) -> "PromptDataset":
        rows, skipped = [], Counter()
        for path, number, row in raw:
            try:
                rows.append(_checked(row, path, number, defaults))
            except RowError as e:
                if not skip_bad_rows:
                    raise
                skipped[e.field] += 1
        if skipped:
            log.warning("skipped %d bad rows by field: %s", sum(skipped.values()), dict(skipped))
        if not rows:
            raise EmptyDatasetError(f"no usable rows in {names}")
        return cls(rows, skipped)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]


def _checked(raw, path: str, number: int, defaults: RowDefaults) -> PromptRow:
    if isinstance(raw, BadJson):
        raise RowError(path, number, "<json>", raw.error)
    try:
        return normalize_row(raw, defaults)
    except FieldError as e:
        raise RowError(path, number, e.field, e.problem) from None
