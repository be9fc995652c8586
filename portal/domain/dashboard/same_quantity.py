""" "Renew same quantity": what it will do, and the order it places."""

from __future__ import annotations

from datetime import datetime

from portal import db
from portal.domain import catalogue
from portal.domain.access import Actor, get_company
from portal.domain.dashboard.figures import SOON
from portal.domain.dashboard.wing_batches import _BATCHES_SQL, describe_batch
from portal.domain.errors import ValidationFailed
from portal.domain.orders import decisions, requests
from portal.tables import Company, LicenceBatch, LicenceOrder


async def renewal_offer(actor: Actor, batch_id: int, now: datetime) -> dict:
    """What renewing a batch at the same quantity will do: customer, quantity,
    product and the new batch's end if assigned now. Refuses what is not renewable."""
    rows = await LicenceBatch.raw(
        _BATCHES_SQL + " LIMIT 1",
        now - SOON,
        (Company.id.is_not_null()).querystring,
        (LicenceBatch.id == batch_id).querystring,
    )
    # Through get_company: a batch outside the wing answers NotFound like any other id.
    company = await get_company(actor, rows[0]["company_id"] if rows else 0)
    batch = describe_batch(rows[0], now)
    if batch["is_trial"]:
        raise ValidationFailed({"batch": "A Free trial is not renewed as it is: request Premium licenses instead."})
    if batch["renewed_at"] is not None:
        raise ValidationFailed({"batch": f"This batch was already renewed on {batch['renewed_at']:%d %b %Y}."})
    if abs(batch["ends_at"] - now) > SOON:
        raise ValidationFailed({"batch": "Renew same quantity is for batches that end within 30 days."})
    product = await catalogue.product(batch["product_id"])
    assert product is not None, "a batch's product is a foreign key"
    pending = await LicenceOrder.count().where(
        (LicenceOrder.company == company["id"]) & (LicenceOrder.status == "requested")
    )
    return {
        **batch,
        "company": company,
        "product": product,
        "quantity": batch["seats"],
        "new_ends_at": catalogue.term_end(product, now),
        "pending": pending,
        "assigns": actor.is_partner_manager,
    }


async def renew_same_quantity(actor: Actor, batch_id: int, now: datetime) -> dict:
    """Places the order for the batch's quantity of the same product: a request
    (status Requested), and for a partner manager assigned at once, in one
    transaction. Returns the offer, the order and the new batch (None if only requested)."""
    first = await renewal_offer(actor, batch_id, now)
    async with db.write_transaction():
        # Under the company's write lock, and asked again: of two clicks, the second finds it renewed.
        await db.for_update(Company.select(Company.id).where(Company.id == first["company"]["id"]))
        offer = await renewal_offer(actor, batch_id, now)
        if offer["pending"] and not actor.is_partner_manager:
            raise ValidationFailed({"batch": "A request of this company is already waiting for Assign."})
        order = await requests.request_order(
            actor, offer["company"]["id"], offer["quantity"], offer["product_id"], "", now
        )
        new_batch = await decisions.assign_order(actor, order["id"], now) if actor.is_partner_manager else None
    return {"order": order, "batch": new_batch, "offer": offer}
