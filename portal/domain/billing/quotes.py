"""What a purchase or a change costs, shown before it is confirmed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from portal.domain.access import Actor

if TYPE_CHECKING:
    from portal.domain.billing.invoices import Line, Totals


@dataclass(frozen=True)
class Purchase:
    tier: str
    extra_users: int
    read_only_users: int
    addons: tuple[str, ...]
    method: str  # "online" | "invoice"


@dataclass(frozen=True)
class Quote:
    lines: tuple[Line, ...]
    totals: Totals
    term_start: datetime | None
    term_end: datetime | None
    notes: tuple[str, ...]


async def quote_purchase(actor: Actor, company_id: int, purchase: Purchase, now: datetime) -> Quote:
    raise NotImplementedError


async def quote_change(
    actor: Actor, subscription_id: int, *, tier: str, extra_users: int, read_only_users: int, now: datetime
) -> Quote:
    """More (upgrade, added users): pro rata to the term end; fewer: 0 now, note "From <date>: N users"."""
    raise NotImplementedError
