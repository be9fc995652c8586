"""What paying an invoice does (a card now, partner staff recording a bank
transfer next week, or nothing yet when the seller assigns unpaid orders): the
purchase, change or renewal it pays for is provisioned once, by
`provision_invoice`. A unique audit entry "provision:<invoice>" written in the
same transaction as the seats is the proof that it was done; the renewal job
takes the same key, and the billing tick finds paid invoices without it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from portal import db
from portal.domain import audit, catalogue
from portal.domain.access import Actor, Capability, may_act_on, require, require_partner_manager
from portal.domain.billing import (
    accounts,
    invoices,
    locks,
    money,
    payments,
    provision_claims,
    provisioning,
    quotes,
    refunds,
)
from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing.quotes import refuse_read_only
from portal.domain.billing.renewal import schedule
from portal.domain.errors import NotFound, ValidationFailed
from portal.tables import LicenceBatch, LicenceOrder, OrderStatus
from portal.tables.billing import Charge, Invoice, InvoiceLine, InvoiceStatus, Subscription, SubscriptionStatus

log = logging.getLogger("portal.billing.settlement")

# A paid invoice is left to the request that paid it for this long.
# How partner staff may say an invoice was paid. A card payment is the processor's
# to record (Pay Online, a renewal's charge): one typed in by hand would mark paid
# what no card paid.
OFFLINE_METHODS = ("card_by_phone", "bank_transfer", "money_order", "check")
MISSED_AFTER = timedelta(minutes=10)
MISSED_WITHIN = timedelta(days=7)
# Paid between the two `{}` and never claimed; read through the partial index invoice_paid
# (migration portal_0006), which holds paid invoices only, by payment date.
MISSED_SQL = (
    "SELECT i.id FROM invoice AS i WHERE i.status = 'paid' AND i.subscription IS NOT NULL "
    "AND i.kind IN ('purchase', 'change', 'renewal') AND i.paid_at > {} AND i.paid_at <= {} "
    f"AND {provision_claims.UNCLAIMED_SQL} "
    "ORDER BY i.paid_at, i.id"
)


async def provision_invoice(
    invoice_id: int, now: datetime, *, actor: Actor | None = None, unpaid_ok: bool = False
) -> dict[str, Any] | None:
    """Provision what a paid invoice pays for, once; inside the caller's transaction.
    Returns the new batch, or None (nothing to provision, or done already).

    - purchase: the first term, from the payment date, assigning the
      invoice's requested order if it has one; the subscription turns active.
    - renewal: the next term, from where the current one ends, its seat holders
      carried over; fewer users asked for (next_*) take effect.
    - change: the tier and users added, with a batch of the added seats from the
      payment date to the term's end.
    `unpaid_ok`: the seller assigns unpaid orders, so an issued invoice counts too
    (from now). The payment date is the invoice's, not `now`: provision_missed
    may come minutes after a crash."""
    head = await Invoice.select(Invoice.subscription).where(Invoice.id == invoice_id).first()
    if head is None or head["subscription"] is None:
        return None
    # Subscription before invoice, the order of locks.py.
    subscription = await locks.lock_subscription(None, head["subscription"])
    invoice = await locks.lock_invoice(None, invoice_id)
    if invoice["status"] != InvoiceStatus.PAID and not (unpaid_ok and invoice["status"] == InvoiceStatus.ISSUED):
        return None
    if not await provision_claims.claim([provision_claims.Claim(invoice, actor)], now):
        return None
    items = {row["code"]: row for row in await billing_catalogue.items(subscription["partner"])}
    actor_id = actor.user_id if actor else None
    paid_on = invoice["paid_at"] or now
    batch: dict[str, Any] | None = None
    if invoice["kind"] == "purchase":
        if subscription["status"] != SubscriptionStatus.PENDING:
            return None
        assigned = await _assigned_batch(invoice["order"])
        if assigned is not None:
            # Someone pressed "Assign" on the order in Requested Orders first: its
            # batch is this term's, and no second one is made.
            return await _adopt(subscription, assigned)
        order_id = invoice["order"]
        if order_id is not None and not await LicenceOrder.exists().where(
            (LicenceOrder.id == order_id) & (LicenceOrder.status == OrderStatus.REQUESTED)
        ):
            order_id = None  # declined or withdrawn meanwhile: the payment still buys the seats
        end = money.term_end(paid_on)
        batch = await provisioning.provision_term(
            subscription,
            seats=billing_catalogue.seats_of(items.get(subscription["tier"]), subscription["extra_users"]),
            starts_at=paid_on,
            ends_at=end,
            now=now,
            order_id=order_id,
            actor_id=actor_id,
            notify=True,
        )
        changes: dict[Any, Any] = {
            "status": SubscriptionStatus.ACTIVE,
            "term_start": paid_on,
            "term_end": end,
            "batch": batch["id"],
        }
    elif invoice["kind"] == "renewal":
        start = invoice["term_start"] or subscription["term_end"]
        end = invoice["term_end"] or money.term_end(start)
        # What the invoice billed when it was issued, not what the subscription says today.
        billed = (await quotes.billed_terms([invoice["id"]])).get(invoice["id"])
        tier = billed.tier if billed else subscription["tier"]
        extra = billed.extra_users if billed else schedule.next_count(subscription, "extra_users")
        read_only = billed.read_only_users if billed else schedule.next_count(subscription, "read_only_users")
        batch = await provisioning.provision_term(
            subscription,
            seats=billing_catalogue.seats_of(items.get(tier), extra),
            starts_at=start,
            ends_at=end,
            now=now,
            carry_holders=True,
            actor_id=actor_id,
            notify=True,
        )
        changes = {
            "status": SubscriptionStatus.ACTIVE,
            "term_start": start,
            "term_end": end,
            "batch": batch["id"],
            "tier": tier,
            "extra_users": extra,
            "read_only_users": read_only,
            "next_extra_users": None,
            "next_read_only_users": None,
            "renewal_attempts": 0,
            "next_charge_at": None,
        }
    elif invoice["kind"] == "change" and _renewed_since(invoice, subscription):
        changes = {}
        batch = await _top_up_old_term(invoice, subscription, items, paid_on, now, actor_id)
    elif invoice["kind"] == "change":
        changes = await _apply_change(invoice, subscription, items)
        added = billing_catalogue.seats_of(
            items.get(changes.get("tier", subscription["tier"])), changes["extra_users"]
        ) - billing_catalogue.seats_of(items.get(subscription["tier"]), subscription["extra_users"])
        if added > 0 and subscription["term_end"] is not None and subscription["term_end"] > paid_on:
            batch = await provisioning.provision_term(
                subscription,
                seats=added,
                starts_at=paid_on,
                ends_at=subscription["term_end"],
                now=now,
                actor_id=actor_id,
                notify=True,
            )
    else:
        return None
    if changes:
        await Subscription.update(changes).where(Subscription.id == subscription["id"])
    if batch is not None and invoice["order"] is None:
        # The seats the invoice paid for, shown beside it.
        await Invoice.update({Invoice.order: batch["order"]}).where(Invoice.id == invoice["id"])
    return batch


async def provision_missed(now: datetime, *, limit: int = 100) -> int:
    """Paid invoices whose provisioning never ran (a process killed between the
    charge's transaction and the provisioning's) are provisioned now, as the
    payment would have done. Only invoices paid more than MISSED_AFTER ago (the
    paying request is done with them) and within MISSED_WITHIN (the tick runs
    every few minutes and at every worker's start: a week covers any outage
    while keeping the scan to a week of payments). Returns how many were taken up."""
    missed = await Invoice.raw(f"{MISSED_SQL} LIMIT {int(limit)}", now - MISSED_WITHIN, now - MISSED_AFTER)
    done = 0
    # A handful after a crash; each its own transaction, so one that fails (logged) holds up no other.
    for row in missed:
        try:
            async with db.write_transaction():
                batch = await provision_invoice(row["id"], now)
        except Exception:
            log.exception("provisioning a paid invoice failed", extra={"invoice": row["id"]})
            continue
        log.warning("provisioned a paid invoice left unprovisioned", extra={"invoice": row["id"], "batch": batch})
        done += 1
    return done


async def _assigned_batch(order_id: int | None) -> dict[str, Any] | None:
    if order_id is None:
        return None
    return (
        await LicenceBatch.select()
        .where((LicenceBatch.order == order_id) & (LicenceBatch.order.status == OrderStatus.ASSIGNED))
        .first()
    )


async def _adopt(subscription: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    await Subscription.update(
        {
            Subscription.status: SubscriptionStatus.ACTIVE,
            Subscription.term_start: batch["starts_at"],
            Subscription.term_end: batch["ends_at"],
            Subscription.batch: batch["id"],
        }
    ).where(Subscription.id == subscription["id"])
    return batch


def _renewed_since(invoice: dict[str, Any], subscription: dict[str, Any]) -> bool:
    """A change invoice paid after the term it changed was renewed: the renewal invoice,
    reissued when the change was made, billed the next term with the change in it."""
    return invoice["term_end"] is not None and subscription["term_end"] != invoice["term_end"]


async def _top_up_old_term(
    invoice: dict[str, Any],
    subscription: dict[str, Any],
    items: dict[str, dict[str, Any]],
    paid_on: datetime,
    now: datetime,
    actor_id: int | None,
) -> dict[str, Any] | None:
    """The change's seats for what is left of the term it changed: that term's seats
    (every Premium batch of the company ending with it) brought up to the renewed
    term's, which include the change. The counts are the renewal's already."""
    old_end = invoice["term_end"]
    if old_end <= paid_on:
        return None
    product = await catalogue.product_by_code(catalogue.PREMIUM)
    held = sum(
        row["seats"]
        for row in await LicenceBatch.select(LicenceBatch.seats).where(
            (LicenceBatch.company == subscription["company"])
            & (LicenceBatch.product == product["id"])
            & (LicenceBatch.ends_at == old_end)
        )
    )
    added = billing_catalogue.seats_of(items.get(subscription["tier"]), subscription["extra_users"]) - held
    if added < 1:
        return None
    return await provisioning.provision_term(
        subscription, seats=added, starts_at=paid_on, ends_at=old_end, now=now, actor_id=actor_id, notify=True
    )


async def _apply_change(
    invoice: dict[str, Any], subscription: dict[str, Any], items: dict[str, dict[str, Any]]
) -> dict[Any, Any]:
    changes: dict[Any, Any] = {
        "extra_users": subscription["extra_users"],
        "read_only_users": subscription["read_only_users"],
    }
    for line in await InvoiceLine.select(InvoiceLine.code).where(InvoiceLine.invoice == invoice["id"]):
        what = quotes.parse_change_code(line["code"])
        if what is None:
            continue
        if what.code == billing_catalogue.STANDARD_USER:
            changes["extra_users"] += what.count
        elif what.code == billing_catalogue.READ_ONLY_USER:
            changes["read_only_users"] += what.count
        elif what.code in items:
            changes["tier"] = what.code
    return changes


async def charge_and_provision(
    actor: Actor | None, invoice: dict[str, Any], token: str, now: datetime, *, processor: payments.CardProcessor
) -> tuple[payments.ChargeResult, dict[str, Any] | None, dict[str, Any]]:
    """Charge (the invoice's next attempt) outside any transaction (the processor is
    slow and may be far), then provision in a short one. Returns the answer, the batch
    and the invoice as it is now. A payment already in progress is refused."""
    charge = await payments.charge_invoice(invoice["id"], token, now=now, processor=processor)
    if charge.pending:
        raise ValidationFailed({"payment": payments.IN_PROGRESS})
    batch = None
    if charge.ok:
        async with db.write_transaction():
            batch = await provision_invoice(invoice["id"], now, actor=actor)
    current = await Invoice.select().where(Invoice.id == invoice["id"]).first()
    return charge, batch, current or invoice


async def pay_invoice(
    actor: Actor, invoice_id: int, now: datetime, *, processor: payments.CardProcessor
) -> dict[str, Any]:
    """Pay an issued invoice of the company with the card on its billing account
    (a purchase whose first charge was declined, a change, a renewal invoice
    asked for early); what it pays for is provisioned when the charge succeeds.
    Returns {"invoice", "charge", "batch"}."""
    refuse_read_only(actor)
    invoice = await Invoice.select().where(Invoice.id == invoice_id).first()
    if invoice is None or not may_act_on(actor, invoice["company_path"]):
        raise NotFound("No such invoice.")
    if invoice["status"] != InvoiceStatus.ISSUED:
        raise invoices.InvoiceTransition(invoice["status"], InvoiceStatus.PAID)
    await _refuse_unless_live(invoice)
    account = await accounts.account_of(invoice["company"])
    if account is None or not account["card_token"]:
        raise ValidationFailed({"card": accounts.NO_CARD})
    charge, batch, current = await charge_and_provision(actor, invoice, account["card_token"], now, processor=processor)
    return {"invoice": current, "charge": charge, "batch": batch}


NOT_CONFIRMED = "Your bank has not confirmed this payment yet: confirm it on your bank's page, then try again."
NOTHING_TO_CONFIRM = "This invoice has no payment waiting for your confirmation."


async def payment_to_confirm(actor: Actor, invoice_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """An invoice of the actor's wing whose last charge waits for its cardholder (the
    bank asked for 3-D Secure): the invoice and that charge (its processor_ref is the
    processor's payment to confirm). An invoice paid since answers with the charge that paid it."""
    invoice = await Invoice.select().where(Invoice.id == invoice_id).first()
    if invoice is None or not may_act_on(actor, invoice["company_path"]):
        raise NotFound("No such invoice.")
    charges = await Charge.select().where(Charge.invoice == invoice_id).order_by(Charge.attempt, ascending=False)
    waiting = next(
        (c for c in charges if c["decline_reason"] == payments.NEEDS_AUTHENTICATION and c["processor_ref"]), None
    )
    confirmed = next((c for c in charges if c["status"] == "succeeded"), None)
    if invoice["status"] == InvoiceStatus.PAID and confirmed is not None:
        return invoice, confirmed
    if invoice["status"] != InvoiceStatus.ISSUED or waiting is None or charges[0]["id"] != waiting["id"]:
        raise ValidationFailed({"payment": NOTHING_TO_CONFIRM})
    return invoice, waiting


async def confirm_payment(
    actor: Actor, invoice_id: int, now: datetime, *, processor: payments.CardProcessor
) -> dict[str, Any]:
    """The cardholder confirmed, in the browser, a payment their bank held back: once the
    processor says it succeeded, the charge is recorded as taken, the invoice paid and
    what it pays for provisioned, as a charge that succeeded at once would be. Safe
    to repeat: a second confirmation answers with the first ("repeat")."""
    refuse_read_only(actor)
    invoice, charge = await payment_to_confirm(actor, invoice_id)
    if invoice["status"] == InvoiceStatus.PAID:
        return {"invoice": invoice, "batch": None, "repeat": True}
    await _refuse_unless_live(invoice)
    status, _ = await processor.confirmation(charge["processor_ref"])
    if status != "succeeded":
        raise ValidationFailed({"payment": NOT_CONFIRMED})
    recorded, batch = await record_confirmed_charge(charge["id"], now, actor=actor)
    await refunds.send_waiting(now, processor=processor, invoice_ids=[invoice_id])
    paid = await Invoice.select().where(Invoice.id == invoice_id).first()
    return {"invoice": paid or invoice, "batch": batch, "repeat": not recorded}


async def record_confirmed_charge(
    charge_id: int, now: datetime, *, actor: Actor | None
) -> tuple[bool, dict[str, Any] | None]:
    """The processor says a charge that waited for its cardholder succeeded (the
    confirmation page reporting back, or the processor's own event when the page
    never did): the charge is recorded as taken, the invoice paid and what it pays for
    provisioned, once, whoever tells first. A charge still pending is its own
    request's to record. Returns whether this call recorded it, and the new batch."""
    head = await Charge.select(Charge.invoice).where(Charge.id == charge_id).first()
    if head is None:
        return False, None
    invoice_id = head["invoice"]
    async with db.write_transaction():
        # The invoice's lock orders the page and the event: the second finds the charge recorded.
        invoice = await db.for_update(Invoice.select().where(Invoice.id == invoice_id)).first()
        charge = await Charge.select().where(Charge.id == charge_id).first()
        if invoice is None or charge is None or charge["status"] in ("succeeded", "pending"):
            return False, None
        detail = {
            "invoice": invoice_id,
            "number": invoices.format_invoice_number(invoice["number"]),
            "attempt": charge["attempt"],
            "amount_cents": charge["amount_cents"],
            "currency": charge["currency"],
            "reference": charge["processor_ref"],
        }
        await Charge.update({Charge.status: "succeeded", Charge.decline_reason: None}).where(Charge.id == charge_id)
        await audit.record(actor, "invoice.charge_confirmed", invoice["company"], now, detail)
        if invoice["status"] != InvoiceStatus.ISSUED:
            # Money taken for an invoice paid otherwise or voided meanwhile: audited; a void
            # one's refunded in full (sent by the confirmation page, else the billing tick).
            await audit.record(None, "invoice.charged_not_issued", invoice["company"], now, detail)
            if invoice["status"] == InvoiceStatus.VOID:
                await refunds.queue_void_refunds([charge], now)
            return True, None
        await invoices.mark_paid(
            invoice_id, method="card", reference=charge["processor_ref"], now=now, recorded_by=None
        )
    async with db.write_transaction():
        batch = await provision_invoice(invoice_id, now, actor=actor)
    return True, batch


NOT_LIVE = "This invoice's subscription has ended: it cannot be paid."


async def _refuse_unless_live(invoice: dict[str, Any]) -> None:
    """An invoice pays for its subscription's term, change or renewal: once the
    subscription has ended or lapsed, paying would take money for nothing."""
    if invoice["subscription"] is None:
        return
    row = await Subscription.select(Subscription.status).where(Subscription.id == invoice["subscription"]).first()
    if row is None or row["status"] not in quotes.LIVE:
        raise ValidationFailed({"status": NOT_LIVE})


async def record_payment(
    actor: Actor, invoice_id: int, *, method: str, reference: str, now: datetime
) -> dict[str, Any]:
    """Partner staff record a payment made other than online (one of
    OFFLINE_METHODS): the invoice is paid and what it pays for provisioned, in
    one transaction. Returns {"invoice", "batch", "subscription"}."""
    refuse_read_only(actor)
    async with db.write_transaction():
        invoice = await invoices.lock_with_subscription(invoice_id)
        if invoice is None or not may_act_on(actor, invoice["company_path"]):
            raise NotFound("No such invoice.")
        require_partner_manager(actor)
        require(actor, Capability.PAYMENTS)
        if method not in OFFLINE_METHODS:
            raise ValidationFailed({"method": "Choose how it was paid."})
        if invoice["status"] == InvoiceStatus.ISSUED:
            await _refuse_unless_live(invoice)
        paid = await invoices.mark_paid(
            invoice["id"], method=method, reference=reference, now=now, recorded_by=actor.user_id, actor=actor
        )
        batch = await provision_invoice(invoice["id"], now, actor=actor)
    subscription = None
    if invoice["subscription"] is not None:
        subscription = await Subscription.select().where(Subscription.id == invoice["subscription"]).first()
    return {"invoice": paid, "batch": batch, "subscription": subscription}
