"""A validated prompt dataset: every row of every file checked when it is loaded."""

import logging
from collections import Counter
from collections.abc import Sequence

from .files import BadJson, read_rows
from .rows import PLAIN_DEFAULTS, FieldError, PromptRow, RowDefaults, RowError, normalize_row

log = logging.getLogger(__name__)


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
        rows, skipped = [], Counter()
        for path in paths:
            for number, raw in read_rows(path):
                try:
                    rows.append(_checked(raw, path, number, defaults))
                except RowError as e:
                    if not skip_bad_rows:
                        raise
                    skipped[e.field] += 1
        if skipped:
            log.warning("skipped %d bad rows by field: %s", sum(skipped.values()), dict(skipped))
        if not rows:
            raise ValueError(f"no usable rows in {list(paths)}")
        return cls(rows, skipped)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]


def _checked(raw, path: str, number: int, defaults: RowDefaults) -> PromptRow:
    if isinstance(raw, BadJson):
        raise RowError(path, number, "<json>", f"not valid JSON: {raw.error}")
    try:
        return normalize_row(raw, defaults)
    except FieldError as e:
        raise RowError(path, number, e.field, e.problem) from None
