"""Row locks billing's writes take, in one order: company, subscription, invoice
(db.for_update: FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE holds it all).
A row outside the actor's wing is NotFound, never someone else's data."""

from __future__ import annotations

from typing import Any

from portal import db
from portal.domain.access import Actor, may_act_on
from portal.domain.errors import NotFound
from portal.tables import Company
from portal.tables.billing import Invoice, Subscription


async def lock_company(company_id: int) -> None:
    await db.for_update(Company.select(Company.id).where(Company.id == company_id))


async def lock_subscription(actor: Actor | None, subscription_id: int) -> dict[str, Any]:
    row = await db.for_update(Subscription.select().where(Subscription.id == subscription_id)).first()
    if row is None or (actor is not None and not may_act_on(actor, row["company_path"])):
        raise NotFound("No such subscription.")
    return row


async def lock_invoice(actor: Actor | None, invoice_id: int) -> dict[str, Any]:
    row = await db.for_update(Invoice.select().where(Invoice.id == invoice_id)).first()
    if row is None or (actor is not None and not may_act_on(actor, row["company_path"])):
        raise NotFound("No such invoice.")
    return row
