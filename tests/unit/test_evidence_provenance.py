"""The provenance fields every benchmark JSON line carries."""

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from prime_megatron.evidence.provenance import jsonable, record


@dataclass
class _Shape:
    hidden: int
    path: Path


def test_record_has_commit_date_machine_and_argv():
    rec = record()
    assert set(rec) == {"commit", "date", "machine", "loadavg_1m", "argv"}
    assert rec["commit"] and "cores" in rec["machine"]
    assert rec["date"].endswith("Z") and len(rec["date"]) == len("2026-01-01T00:00:00Z")


def test_record_carries_config_and_overrides_as_plain_json():
    args = argparse.Namespace(out=Path("/tmp/x"), seeds=3, parts=("a", "b"))
    rec = record(config={"args": args, "shape": _Shape(8, Path("m"))}, overrides=["a.b=1"])
    assert rec["config"] == {"args": {"out": "/tmp/x", "seeds": 3, "parts": ["a", "b"]},
                             "shape": {"hidden": 8, "path": "m"}}  # fmt: skip
    assert rec["overrides"] == ["a.b=1"]
    json.dumps(rec)


def test_jsonable_leaves_plain_values_and_stringifies_the_rest():
    assert jsonable({"a": [1, 2.5, None, True, "s"]}) == {"a": [1, 2.5, None, True, "s"]}
    assert jsonable({1: {3, 4}}) in ({"1": [3, 4]}, {"1": [4, 3]})
    assert jsonable(object).startswith("<class")
