"""Read raw rows from jsonl, json (a list) or parquet files, numbering them from 1."""

import json
import os
from collections.abc import Iterator
from typing import Any

from .rows import RowError

FORMATS = (".jsonl", ".json", ".parquet")


class BadJson:
    """Stands in for a jsonl line that is not JSON (or not text), so the loader can error
    or skip it."""

    def __init__(self, error: str) -> None:
        self.error = error


def read_rows(path: str) -> Iterator[tuple[int, Any]]:
    """``(row number, raw row)`` pairs; for jsonl the row number is the line number."""
    ext = os.path.splitext(path)[1]
    if ext not in FORMATS:
        raise RowError(path, 0, "<file>", f"unknown format {ext!r}: expected one of {FORMATS}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset file not found: {path}")
    if ext == ".parquet":
        yield from _parquet(path)
    elif ext == ".json":
        yield from _json_list(path)
    else:
        yield from _jsonl(path)


def _jsonl(path: str) -> Iterator[tuple[int, Any]]:
    # Bytes, decoded line by line: a line that is not UTF-8 is then a bad row with its number.
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield number, BadJson(_not_utf8(e))
                continue
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                yield number, BadJson(f"not valid JSON: {e}")


def _not_utf8(error: UnicodeDecodeError) -> str:
    bad = error.object[error.start : error.start + 1]
    return f"not UTF-8 text (byte {bad!r} at offset {error.start})"


def _json_list(path: str) -> Iterator[tuple[int, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    except UnicodeDecodeError as e:
        raise RowError(path, 0, "<file>", _not_utf8(e)) from None
    except json.JSONDecodeError as e:
        raise RowError(path, 0, "<file>", f"not JSON: {e}") from None
    if not isinstance(rows, list):
        raise RowError(path, 0, "<file>", "a .json dataset must be a list of rows")
    yield from enumerate(rows, start=1)


def _parquet(path: str) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    number = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches():
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (pa.ArrowException, OSError) as e:  # truncated or not parquet at all
        reason = " ".join(str(e).split()) or type(e).__name__
        after = f" after row {number}" if number else ""
        raise RowError(
            path, 0, "<file>", f"not a readable parquet file{after} ({reason})"
        ) from None
