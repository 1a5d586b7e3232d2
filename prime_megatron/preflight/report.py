"""The pre-flight report: one PASS / WARN / FAIL / SKIP line per check, details under it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
DETAIL_LIMIT = 5  # listed problems per check; the rest are counted


@dataclass(frozen=True)
class Check:
    title: str
    status: str
    summary: str
    details: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        return [f"{self.status}  {self.title}: {self.summary}"] + [
            f"      {d}" for d in self.details
        ]


def listed(items: Sequence[str], limit: int = DETAIL_LIMIT) -> tuple[str, ...]:
    """The first ``limit`` items, then how many more there are."""
    more = (f"... and {len(items) - limit} more",) if len(items) > limit else ()
    return tuple(items[:limit]) + more


def exit_code(checks: Sequence[Check]) -> int:
    """0 if nothing failed (warnings allowed), 2 otherwise."""
    return 2 if any(c.status == FAIL for c in checks) else 0


def render(checks: Sequence[Check]) -> str:
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, WARN, FAIL, SKIP)}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    verdict = "ready" if exit_code(checks) == 0 else "NOT ready"
    body = [line for c in checks for line in c.lines()]
    return "\n".join([*body, f"preflight: {tally}: {verdict} (exit {exit_code(checks)})"])
