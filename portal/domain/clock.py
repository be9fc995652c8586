from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The real clock, for callers at the edge (web handlers, jobs, CLI). Domain
    functions take `now` as a parameter so tests can move time."""
    return datetime.now(UTC)
