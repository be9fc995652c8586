"""A user's licence status, read from the end of their latest seat against the clock."""

from __future__ import annotations

from datetime import datetime, timedelta

EXPIRING_WITHIN = timedelta(hours=72)


def licence_status(ends_at: datetime | None, now: datetime) -> str:
    if ends_at is None:
        return "unlicensed"
    if ends_at <= now:
        return "expired"
    if ends_at - now <= EXPIRING_WITHIN:
        return "expiring"
    return "active"
