"""The customer's own summary, first on a customer manager's dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.domain.access import Actor, get_company
from portal.domain.dashboard.wing_batches import _BATCHES_SQL, describe_batch
from portal.domain.licences.plans import name_by_plan
from portal.domain.licences.status import EXPIRING_WITHIN
from portal.domain.licences.tabs import allocate_tab, seats_unused, tab_counts
from portal.tables import Company, LicenceBatch, LicenceOrder, OrderStatus


async def customer_summary(actor: Actor, company_id: int, now: datetime) -> dict[str, Any]:
    """A customer's licences first: active / expiring / expired / unlicensed
    users, free seats of each running batch with its end, pending requests,
    the next batch end, and whether free seats lie unused while users wait."""
    company = await get_company(actor, company_id)
    counts = await tab_counts(actor, company["id"], now)
    expiring = await Company.raw(
        "SELECT COALESCE(SUM(users), 0) AS n FROM licence_tally WHERE company = {} AND ends_at > {} AND ends_at <= {}",
        company["id"],
        now,
        now + EXPIRING_WITHIN,
    )
    is_running = (
        (LicenceBatch.company == company["id"]) & (LicenceBatch.starts_at <= now) & (LicenceBatch.ends_at > now)
    )
    rows = await LicenceBatch.raw(
        _BATCHES_SQL + " ORDER BY licence_batch.ends_at, licence_batch.id",
        (Company.id == company["id"]).querystring,
        is_running.querystring,
    )
    await name_by_plan(rows)
    running = [describe_batch(row, now) for row in rows]
    pending = await LicenceOrder.count().where(
        (LicenceOrder.company == company["id"]) & (LicenceOrder.status == OrderStatus.REQUESTED)
    )
    expiring_n = int(expiring[0]["n"] or 0)
    free = sum(b["free"] for b in running)
    waiting = counts["expired"] + counts["unlicensed"]
    return {
        "company": company,
        "active": counts["active"] - expiring_n,
        "expiring": expiring_n,
        "expired": counts["expired"],
        "unlicensed": counts["unlicensed"],
        "batches": running,
        "free": free,
        "waiting": waiting,
        # Seats paid for and not used: "Allocate now" opens Select All on this tab.
        "unused": seats_unused(free, waiting),
        "allocate_tab": allocate_tab(counts["expired"]),
        "pending": pending,
        "next_end": running[0] if running else None,
    }
