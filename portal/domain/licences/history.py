"""A user's licence history: every seat they held."""

from __future__ import annotations

from typing import Any

from portal.domain.access import Actor, get_user
from portal.tables import Allocation


async def history(actor: Actor, user_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A user's seats, newest first: which batch, when, by whom, until when."""
    user = await get_user(actor, user_id)
    seats = (
        await Allocation.select(
            Allocation.id,
            Allocation.allocated_at,
            Allocation.starts_at,
            Allocation.ends_at,
            Allocation.released_at,
            Allocation.batch.seats.as_alias("batch_seats"),
            Allocation.batch.starts_at.as_alias("batch_starts_at"),
            Allocation.batch.ends_at.as_alias("batch_ends_at"),
            Allocation.batch._.product._.name.as_alias("product_name"),
            Allocation.allocated_by.name.as_alias("allocated_by_name"),
        )
        .where(Allocation.user == user["id"])
        .order_by(Allocation.allocated_at, ascending=False)
    )
    return user, seats
