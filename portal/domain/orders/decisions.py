"""An order's lifecycle after its request: "Assign" (which creates the batch and
starts its clock, or, for a renewal, continues the batch it renews), "Decline",
cancel, and the Free trial, assigned at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from portal import db
from portal.domain import audit, catalogue, outbox
from portal.domain.access import Actor, Capability, may_act_on, require, require_partner_manager
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import NotFound, ValidationFailed
from portal.domain.licences import coterm, renewals
from portal.domain.orders.order_list import OrderRow, get_order
from portal.domain.orders.requests import request_order
from portal.tables import Allocation, Company, LicenceBatch, LicenceOrder, OrderStatus, User


class InvalidTransition(ValidationFailed):
    def __init__(self, status: str, wanted: str) -> None:
        super().__init__({"status": f"This order is already {status}; it cannot be {wanted}."})
        self.status = status


async def _lock_order(actor: Actor, order_id: int, partners_only: bool = True) -> dict[str, Any]:
    row = await db.for_update(
        LicenceOrder.select(*LicenceOrder.all_columns()).where(LicenceOrder.id == order_id),
        of=LicenceOrder,
    ).first()
    if row is None or not may_act_on(actor, row["company_path"]):
        raise NotFound("No such order.")
    if partners_only:
        require_partner_manager(actor)
        require(actor, Capability.ORDERS)
    return row


# An order bought "Pay by Invoice" waits for its payment, unless the seller assigns unpaid orders.
# None of its purchase invoices is paid (a voided one pays nothing either); the
# seller's "assign unpaid" lets an issued one through, never a void one alone.
_UNPAID_PURCHASE_SQL = (
    "SELECT 1 FROM invoice LEFT JOIN billing_profile ON billing_profile.company = invoice.partner "
    "WHERE invoice.\"order\" = {} AND invoice.kind = 'purchase' "
    "GROUP BY billing_profile.assign_unpaid "
    "HAVING SUM(CASE WHEN invoice.status = 'paid' THEN 1 ELSE 0 END) = 0 "
    "AND NOT (COALESCE(billing_profile.assign_unpaid, false) "
    "AND SUM(CASE WHEN invoice.status = 'issued' THEN 1 ELSE 0 END) > 0)"
)


async def unpaid_refusal(order_id: int) -> str | None:
    """Why the order waits for its payment, or None."""
    if await LicenceOrder.raw(_UNPAID_PURCHASE_SQL, order_id):
        return "Its invoice is not paid yet: record the payment under Billing → Invoices, which assigns it."
    return None


async def _refuse_unpaid(order_id: int) -> None:
    refused = await unpaid_refusal(order_id)
    if refused:
        raise ValidationFailed({"status": refused})


async def assign_order(actor: Actor, order_id: int, now: datetime) -> dict[str, Any]:
    """Assigning creates the batch. Its term starts now, for every seat (the
    guides' rule), unless the order renews a batch: then it starts where that
    batch ends and that batch's holders move to it (licences.renewals). A
    second assign (double click, two managers) finds the order assigned and is
    refused, so there is one batch; a batch is renewed by one order only.

    Returns the batch row, with `term` (renewals.NewTerm: the rule applied and
    who moved)."""
    async with db.write_transaction():
        head = (
            await LicenceOrder.select(LicenceOrder.company, LicenceOrder.renews_batch)
            .where(LicenceOrder.id == order_id)
            .first()
        )
        if head is not None and head["renews_batch"] is not None:
            # Moving holders changes seats: the company's write lock, as allocating takes it,
            # before the order's (Renew same quantity holds it when it assigns a waiting request).
            await db.for_update(Company.select(Company.id).where(Company.id == head["company"]))
        order = await _lock_order(actor, order_id)
        if order["status"] != OrderStatus.REQUESTED:
            raise InvalidTransition(order["status"], OrderStatus.ASSIGNED)
        await _refuse_unpaid(order["id"])
        product = await catalogue.product(order["product"])
        assert product is not None, "an order's product is a foreign key"
        renewed = await _batch_to_renew(order) if order["renews_batch"] is not None else None
        term = await renewals.new_term(product, order["quantity"], renewed, now, _cotermed_to(order, now))
        batch = (
            await LicenceBatch.insert(
                LicenceBatch(
                    order=order["id"],
                    company=order["company"],
                    product=product["id"],
                    seats=order["quantity"],
                    allocated=0,
                    starts_at=term.starts_at,
                    ends_at=term.ends_at,
                )
            ).returning(*LicenceBatch.all_columns())
        )[0]
        await LicenceOrder.update(
            {
                LicenceOrder.status: OrderStatus.ASSIGNED,
                LicenceOrder.decided_by: actor.user_id,
                LicenceOrder.decided_at: now,
            }
        ).where(LicenceOrder.id == order["id"])
        if not product["is_trial"]:
            await end_running_trials(order["company"], now)
        if renewed is not None:
            moved = (await renewals.carry_over([batch["id"]], now))[batch["id"]]
            batch["allocated"] = moved
            term = replace(term, moving=moved)
        company = await Company.select(Company.name).where(Company.id == order["company"]).first()
        assert company is not None, "an order's company is a foreign key"
        await queue_kind(
            "order_assigned",
            order["company"],
            await outbox.managers_of(order["company"]),
            {
                "company_id": order["company"],
                "company_name": company["name"],
                "quantity": order["quantity"],
                "product_name": product["name"],
                "paid": False,
                "renewal": renewed is not None,
                "starts_at": term.starts_at,
                "ends_at": term.ends_at,
                "cotermed": term.cotermed,
                "moving": term.moving,
            },
            now,
            dedupe=f"order_assigned:{order['id']}",
        )
        await audit.record(
            actor,
            "order.assign",
            order["company"],
            now,
            {"order": order["id"], "batch": batch["id"], "seats": order["quantity"]}
            | ({"renews_batch": renewed["id"], "moved": term.moving} if renewed else {})
            | ({"ends_with_term": term.ends_at.isoformat()} if term.cotermed else {}),
        )
    batch["term"] = term
    return batch


def _cotermed_to(order: dict[str, Any], now: datetime) -> datetime | None:
    """The end of the current term a co-termed order ends with; refused once that
    term has ended (its seats would start ended): the customer requests anew."""
    ends_at = order["coterm_ends_at"]
    if ends_at is not None and ends_at <= now:
        raise ValidationFailed(
            {
                "status": f"This order was to end with the current term, which ended on {ends_at:%d %b %Y}: "
                "decline it and request anew."
            }
        )
    return cast("datetime | None", ends_at)


async def _batch_to_renew(order: dict[str, Any]) -> dict[str, Any]:
    """The batch a renewal order continues, refused if another order renewed it first."""
    renewed = (
        await LicenceBatch.select()
        .where((LicenceBatch.id == order["renews_batch"]) & (LicenceBatch.company == order["company"]))
        .first()
    )
    if renewed is None:
        raise ValidationFailed({"status": "The batch this order renews is gone; decline it and request anew."})
    first = (
        await LicenceOrder.select(LicenceOrder.decided_at)
        .where(
            (LicenceOrder.renews_batch == renewed["id"])
            & (LicenceOrder.status == OrderStatus.ASSIGNED)
            & (LicenceOrder.id != order["id"])
        )
        .first()
    )
    if first is not None:
        raise ValidationFailed(
            {
                "status": f"The batch this order renews was already renewed on {first['decided_at']:%d %b %Y}: "
                "decline this order, or Request Licenses for more seats."
            }
        )
    return renewed


async def end_running_trials(company_id: int, now: datetime) -> None:
    """A paid batch upgrades a trial: running trial batches end now, so their
    holders show expired and can be given seats of the new batch."""
    await end_running_trials_of([company_id], now)


async def end_running_trials_of(company_ids: list[int], now: datetime) -> None:
    """end_running_trials for many companies at once (one statement when none has a trial running)."""
    trials = LicenceBatch.select(LicenceBatch.id).where(
        LicenceBatch.company.is_in(company_ids)
        & (LicenceBatch.product.is_trial == True)  # noqa: E712
        & (LicenceBatch.ends_at > now)
    )
    trial_ids = [row["id"] for row in await trials]
    if not trial_ids:
        return
    await LicenceBatch.update({LicenceBatch.ends_at: now}).where(LicenceBatch.id.is_in(trial_ids))
    await Allocation.update({Allocation.ends_at: now}).where(
        Allocation.batch.is_in(trial_ids) & (Allocation.ends_at > now)
    )
    # A user's seats are all of their own company's batches.
    await User.update({User.licence_ends_at: now}).where(
        User.company.is_in(company_ids)
        & (User.licence_ends_at > now)
        & User.id.is_in(Allocation.select(Allocation.user).where(Allocation.batch.is_in(trial_ids)))
        & User.id.not_in(
            Allocation.select(Allocation.user).where(
                Allocation.batch.not_in(trial_ids)
                & (Allocation.ends_at > now)
                & Allocation.released_at.is_null()
                & Allocation.batch.company.is_in(company_ids)
            )
        )
    )


async def decline_order(actor: Actor, order_id: int, reason: str, now: datetime) -> dict[str, Any]:
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed({"reason": "Say why, so the customer knows what to do next."})
    if len(reason) > 500:
        raise ValidationFailed({"reason": "Use at most 500 characters."})
    async with db.write_transaction():
        order = await _lock_order(actor, order_id)
        if order["status"] != OrderStatus.REQUESTED:
            raise InvalidTransition(order["status"], OrderStatus.DECLINED)
        await LicenceOrder.update(
            {
                LicenceOrder.status: OrderStatus.DECLINED,
                LicenceOrder.decided_by: actor.user_id,
                LicenceOrder.decided_at: now,
                LicenceOrder.decline_reason: reason,
            }
        ).where(LicenceOrder.id == order["id"])
        await queue_kind(
            "order_declined",
            order["company"],
            await outbox.managers_of(order["company"]),
            {"quantity": order["quantity"], "declined_by": actor.name, "reason": reason},
            now,
            dedupe=f"order_declined:{order['id']}",
        )
        await audit.record(
            actor,
            "order.decline",
            order["company"],
            now,
            {"order": order["id"], "seats": order["quantity"], "reason": reason},
        )
    return {**order, "status": OrderStatus.DECLINED, "decline_reason": reason}


async def cancel_order(actor: Actor, order_id: int, now: datetime) -> None:
    """Whoever may order for the company may withdraw a request not yet decided."""
    async with db.write_transaction():
        order = await _lock_order(actor, order_id, partners_only=False)
        if order["status"] != OrderStatus.REQUESTED:
            raise InvalidTransition(order["status"], OrderStatus.CANCELLED)
        await LicenceOrder.update(
            {
                LicenceOrder.status: OrderStatus.CANCELLED,
                LicenceOrder.decided_by: actor.user_id,
                LicenceOrder.decided_at: now,
            }
        ).where(LicenceOrder.id == order["id"])
        await audit.record(
            actor, "order.cancel", order["company"], now, {"order": order["id"], "seats": order["quantity"]}
        )


async def start_trial(actor: Actor, company_id: int, seats: int, now: datetime) -> dict[str, Any]:
    """A new customer starts on the 30-day Free trial: an order of the trial
    product, assigned at once by the partner manager; it ends by itself."""
    require_partner_manager(actor)
    require(actor, Capability.ORDERS)
    if await LicenceBatch.exists().where(LicenceBatch.company == company_id):
        raise ValidationFailed({"trial": "A Free trial is for customers that never held licenses."})
    trial = await catalogue.product_by_code(catalogue.TRIAL)
    async with db.write_transaction():
        order = await request_order(actor, company_id, seats, trial["id"], "", now)
        return await assign_order(actor, order["id"], now)


@dataclass(frozen=True)
class AssignPreview:
    """What "Assign" will do, shown before it does it."""

    order: OrderRow
    term: renewals.NewTerm  # when the batch runs if assigned now, and who moves to it
    # A co-termed order: its end and 12 months from now, with their prices where one applies.
    offer: coterm.Offer | None = None

    @property
    def ends_at(self) -> datetime:
        return self.term.ends_at


async def assign_preview(actor: Actor, order_id: int, now: datetime) -> AssignPreview:
    order = await get_order(actor, order_id)
    if order["status"] != OrderStatus.REQUESTED:
        raise InvalidTransition(order["status"], OrderStatus.ASSIGNED)
    await _refuse_unpaid(order["id"])
    product = await catalogue.product(order["product_id"])
    assert product is not None, "an order's product is a foreign key"
    row = await LicenceOrder.select().where(LicenceOrder.id == order["id"]).first()
    assert row is not None, "get_order just read it"
    renewed = await _batch_to_renew(row) if row["renews_batch"] is not None else None
    cotermed_to = _cotermed_to(row, now) if renewed is None else None
    term = await renewals.new_term(product, order["quantity"], renewed, now, cotermed_to)
    offer = await coterm.offer(row["company"], order["quantity"], now, cotermed_to) if cotermed_to else None
    return AssignPreview(order, term, offer)
