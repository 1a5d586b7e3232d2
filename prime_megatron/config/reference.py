"""A Markdown reference of a nested dataclass config: every field, its default, the values
named jobs give it, and the comments its source puts by it.

The comments are the documentation: a field's own comment lines above it and its trailing
comment, read from the class's source, so the reference cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from typing import Any

FIELD_LINE = re.compile(r"^    (\w+): [^=]+?(?:=|$)")


def field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` from the source of dataclass ``cls`` (comment lines directly
    above the field, then its trailing comment)."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        match = FIELD_LINE.match(line)
        if match:
            trailing = line.partition("  # ")[2].strip()
            if trailing and trailing != "fmt: skip":
                pending.append(trailing)
            comments[match.group(1)] = " ".join(pending)
        if stripped == "" or match or stripped.startswith(("def ", "@")):
            pending = []
    return comments


def _show(value: Any) -> str:
    """The value as YAML/JSON spells it (true, null, "text")."""
    return "`" + json.dumps(value).replace("|", "\\|") + "`"


def _rows(default: Any, jobs: dict[str, Any], prefix: str) -> tuple[list[str], list[tuple]]:
    """This section's table rows and its nested sections ``(name, default, jobs)``."""
    comments = field_comments(type(default))
    rows, nested = [], []
    for f in dataclasses.fields(default):
        value = getattr(default, f.name)
        at_jobs = {name: getattr(job, f.name) for name, job in jobs.items()}
        if dataclasses.is_dataclass(value):
            nested.append((prefix + f.name, value, at_jobs))
            continue
        differs = [f"{name}: {_show(v)}" for name, v in at_jobs.items() if v != value]
        doc = comments.get(f.name, "").replace("|", "\\|")
        rows.append(f"| `{prefix}{f.name}` | {_show(value)} | {'; '.join(differs)} | {doc} |")
    return rows, nested


def _class_doc(cls: type) -> str | None:
    """The class's own docstring (not the signature ``dataclass`` writes when it has none)."""
    doc = inspect.getdoc(cls)
    return None if not doc or doc.startswith(cls.__name__ + "(") else doc


def render_reference(default: Any, jobs: dict[str, Any], title: str, intro: str) -> str:
    """Markdown: one table per section of ``default`` (a dataclass instance); ``jobs`` are
    instances of the same class whose values are shown where they differ."""
    out = [f"# {title}", "", intro, ""]
    sections = [("", default, jobs)]
    while sections:
        name, section, at_jobs = sections.pop(0)
        rows, nested = _rows(section, at_jobs, f"{name}." if name else "")
        if rows:
            doc = _class_doc(type(section)) if name else None
            out += [f"## `{name}`" if name else "## Top level", ""]
            out += [doc.split("\n\n")[0].replace("\n", " "), ""] if doc else []
            out += ["| Field | Default | Where a job differs | What it is |",
                    "| --- | --- | --- | --- |", *rows, ""]  # fmt: skip
        sections = nested + sections
    return "\n".join(out)
