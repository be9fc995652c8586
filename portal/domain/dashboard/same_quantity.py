""" "Renew same quantity": what it will do, and the order it places: a renewal
of the batch (licence_order.renews_batch), which continues it for its holders."""

from __future__ import annotations

from datetime import datetime

from portal import db
from portal.domain import catalogue
from portal.domain.access import Actor, get_company
from portal.domain.dashboard.figures import SOON
from portal.domain.dashboard.wing_batches import _BATCHES_SQL, describe_batch
from portal.domain.errors import ValidationFailed
from portal.domain.licences import renewals
from portal.domain.orders import decisions, requests
from portal.tables import Company, LicenceBatch, LicenceOrder


async def renewal_offer(actor: Actor, batch_id: int, now: datetime) -> dict:
    """What renewing a batch at the same quantity will do: customer, quantity,
    product, the new term (from the batch's end, to its end, how many holders
    move) and, for a partner manager, the renewal request it assigns if one is
    waiting. Refuses what is not renewable."""
    rows = await LicenceBatch.raw(
        _BATCHES_SQL + " LIMIT 1",
        (Company.id.is_not_null()).querystring,
        (LicenceBatch.id == batch_id).querystring,
    )
    # Through get_company: a batch outside the wing answers NotFound like any other id.
    company = await get_company(actor, rows[0]["company_id"] if rows else 0)
    batch = describe_batch(rows[0], now)
    if batch["is_trial"]:
        raise ValidationFailed({"batch": "A Free trial is not renewed as it is: request Premium licenses instead."})
    if batch["subscription_term"]:
        raise ValidationFailed(
            {"batch": "This batch is a subscription's term: it renews with the subscription (Billing → Subscriptions)."}
        )
    if batch["renewed_at"] is not None:
        raise ValidationFailed({"batch": f"This batch was already renewed on {batch['renewed_at']:%d %b %Y}."})
    waiting = (
        await LicenceOrder.select(LicenceOrder.id, LicenceOrder.requested_at)
        .where((LicenceOrder.renews_batch == batch["id"]) & (LicenceOrder.status == "requested"))
        .first()
    )
    if waiting is not None and not actor.is_partner_manager:
        raise ValidationFailed(
            {
                "batch": f"A renewal of this batch is already waiting for Assign, "
                f"requested {waiting['requested_at']:%d %b %Y}."
            }
        )
    if abs(batch["ends_at"] - now) > SOON:
        raise ValidationFailed({"batch": "Renew same quantity is for batches that end within 30 days."})
    product = await catalogue.product(batch["product_id"])
    assert product is not None, "a batch's product is a foreign key"
    renewed = await LicenceBatch.select().where(LicenceBatch.id == batch["id"]).first()
    assert renewed is not None, "just listed"
    term = await renewals.new_term(product, batch["seats"], renewed, now)
    pending = await LicenceOrder.count().where(
        (LicenceOrder.company == company["id"]) & (LicenceOrder.status == "requested")
    )
    return {
        **batch,
        "company": company,
        "product": product,
        "quantity": batch["seats"],
        "term": term,
        "new_ends_at": term.ends_at,
        "pending": pending,
        "waiting": waiting,
        "assigns": actor.is_partner_manager,
    }


async def renew_same_quantity(actor: Actor, batch_id: int, now: datetime) -> dict:
    """Places the renewal order for the batch's quantity of the same product: a
    request (status Requested), and for a partner manager assigned at once (or,
    if a renewal request of the batch waits, that one assigned), in one
    transaction. Returns the offer, the order and the new batch (None if only requested)."""
    first = await renewal_offer(actor, batch_id, now)
    async with db.write_transaction():
        # Under the company's write lock, and asked again: of two clicks, the second finds it renewed.
        await db.for_update(Company.select(Company.id).where(Company.id == first["company"]["id"]))
        offer = await renewal_offer(actor, batch_id, now)
        if offer["pending"] and not actor.is_partner_manager:
            raise ValidationFailed({"batch": "A request of this company is already waiting for Assign."})
        if offer["waiting"] is not None:
            order = await LicenceOrder.select().where(LicenceOrder.id == offer["waiting"]["id"]).first()
            assert order is not None, "read under the company's lock"
        else:
            order = await requests.request_order(
                actor,
                offer["company"]["id"],
                offer["quantity"],
                offer["product_id"],
                "",
                now,
                renews_batch=offer["id"],
            )
        new_batch = await decisions.assign_order(actor, order["id"], now) if actor.is_partner_manager else None
    return {"order": order, "batch": new_batch, "offer": offer}
