"""A paid term's seats as the licence model holds them: an assigned order and its batch."""

from __future__ import annotations

from datetime import datetime


async def provision_term(
    subscription: dict,
    *,
    seats: int,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    carry_over_batch: int | None = None,
) -> dict:
    """An assigned LicenceOrder + LicenceBatch for the subscription's company, with the
    seat holders of `carry_over_batch` carried over (set-based), inside the caller's
    transaction. Returns the batch row."""
    raise NotImplementedError
