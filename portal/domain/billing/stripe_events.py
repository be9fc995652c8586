"""What Stripe tells the portal by webhook, recorded once per event.

The web verifies an event's signature and `receive`s it: one `stripe_event` row
per event id (unique), so a replay stores nothing more, and a job `process`es it.
Processing is idempotent twice over: the row is claimed (received → processed |
ignored) in the transaction that records the event's effect, and each effect is
keyed too (the charge row's status under its invoice's lock, audit and outbox
dedupe keys). Events can arrive in any order: a failure never undoes a success
already recorded, and a success recorded by the confirmation page is not
recorded again.

- payment_intent.succeeded: the charge waiting for its cardholder (3-D Secure)
  recorded as taken, its invoice paid and provisioned, as the confirmation page
  does (settlement.record_confirmed_charge): the customer may close the tab before
  the page reports back.
- payment_intent.payment_failed: audited; the charge row keeps what it says.
- charge.refunded: audited; a refund the portal made (refunds.py) is already
  recorded and counts; what Stripe refunded beyond the portal's refunds of that
  payment (a refund made in Stripe's dashboard) is recorded as a refund, with a
  credit note when its invoice is paid, once per running total (a replay records
  nothing more).
- charge.dispute.created: audited, and the seller's account managers e-mailed.
- a kept card updated or about to expire (payment_method.automatically_updated,
  payment_method.card_automatically_updated, payment_method.updated,
  customer.source.expiring): the billing account's card details updated; when the
  card ends before an online subscription renews, the customer's managers are
  e-mailed to update it.
- anything else: kept, marked ignored.

A charge is found by the PaymentIntent's metadata `charge_key` (the charge row's
idempotency key, set by the Stripe adapter), else by its id (the row's processor_ref)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from portal import db
from portal.domain import audit, outbox
from portal.domain.billing import money, refunds
from portal.domain.billing.invoices import format_invoice_number
from portal.domain.billing.settlement import record_confirmed_charge
from portal.domain.emails.queue import queue_kind
from portal.tables import Company
from portal.tables.billing import BillingAccount, Charge, Invoice, StripeEvent, Subscription, SubscriptionStatus

# Events the job has not processed this long after they arrived (a lost job: Redis
# down when it was queued, a worker killed) are taken up by the billing tick.
WAITING_AFTER = timedelta(minutes=2)
CARD_EVENTS = (
    "payment_method.automatically_updated",
    "payment_method.card_automatically_updated",
    "payment_method.updated",
    "customer.source.expiring",
)


async def receive(event_id: str, event_type: str, payload: str, now: datetime) -> bool:
    """Keep a verified event once. Returns whether it is new (a replay is not)."""
    written = (
        await StripeEvent.insert(
            StripeEvent(event_id=event_id, type=event_type[:100], payload=payload, received_at=now, status="received")
        )
        .on_conflict(action="DO NOTHING")
        .returning(StripeEvent.id)
    )
    return bool(written)


async def process(event_id: str, now: datetime) -> str:
    """Record what the event says, once. Returns the event's status afterwards."""
    row = await StripeEvent.select().where(StripeEvent.event_id == event_id).first()
    if row is None or row["status"] != "received":
        return row["status"] if row else "missing"
    event = json.loads(row["payload"])
    obj = (event.get("data") or {}).get("object") or {}
    if row["type"] == "payment_intent.succeeded":
        # The settlement takes its own locks and transactions, and is idempotent on its own.
        outcome = await _payment_succeeded(obj, now)
        async with db.write_transaction():
            return await _finish(event_id, now, outcome)
    handler = _HANDLERS.get(row["type"])
    async with db.write_transaction():
        if not await _claim(event_id):
            return "processed"
        outcome = await handler(event_id, obj, now) if handler else None
        return await _finish(event_id, now, outcome, claimed=True)


async def process_waiting(now: datetime, *, limit: int = 100) -> int:
    """Events whose job never ran, processed now (the billing tick). Returns how many."""
    rows = (
        await StripeEvent.select(StripeEvent.event_id)
        .where((StripeEvent.status == "received") & (StripeEvent.received_at < now - WAITING_AFTER))
        .order_by(StripeEvent.received_at)
        .limit(limit)
    )
    for row in rows:
        await process(row["event_id"], now)
    return len(rows)


async def _claim(event_id: str) -> bool:
    """Take the event for this transaction; a second run (a replayed job) finds it taken."""
    taken = (
        await StripeEvent.update({StripeEvent.status: "processed"})
        .where((StripeEvent.event_id == event_id) & (StripeEvent.status == "received"))
        .returning(StripeEvent.id)
    )
    return bool(taken)


async def _finish(event_id: str, now: datetime, outcome: str | None, *, claimed: bool = False) -> str:
    """Processed with what it did, or ignored (None: nothing of the portal's)."""
    status = "ignored" if outcome is None else "processed"
    # Claimed in this transaction (status "processed" already), or still as it arrived.
    holding = "processed" if claimed else "received"
    await StripeEvent.update(
        {
            StripeEvent.status: status,
            StripeEvent.processed_at: now,
            StripeEvent.outcome: (outcome or "not handled")[:200],
        }
    ).where((StripeEvent.event_id == event_id) & (StripeEvent.status == holding))
    return status


async def _charge_of(intent: dict[str, Any]) -> dict[str, Any] | None:
    key = (intent.get("metadata") or {}).get("charge_key")
    if isinstance(key, str) and key:
        found = await Charge.select().where(Charge.idempotency_key == key).first()
        if found is not None:
            return found
    intent_id = intent.get("id")
    if not isinstance(intent_id, str) or not intent_id:
        return None
    return await Charge.select().where(Charge.processor_ref == intent_id).first()


async def _charge_of_payment(obj: dict[str, Any]) -> dict[str, Any] | None:
    """A Charge's or a Dispute's charge row, through its PaymentIntent."""
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):
        return await _charge_of(intent)
    return await _charge_of({"id": intent}) if isinstance(intent, str) else None


def _same_amount(obj: dict[str, Any], charge: dict[str, Any]) -> bool:
    return cast(
        "bool",
        obj.get("amount") == charge["amount_cents"] and str(obj.get("currency", "")).upper() == charge["currency"],
    )


async def _payment_succeeded(intent: dict[str, Any], now: datetime) -> str | None:
    charge = await _charge_of(intent)
    if charge is None:
        return None
    if not _same_amount(intent, charge):
        return "amount differs from the charge's: not recorded"
    if charge["status"] == "pending":
        # Its own request is asking Stripe right now, and records the answer.
        return "charge pending: recorded by its request"
    recorded, _ = await record_confirmed_charge(charge["id"], now, actor=None)
    return "payment recorded" if recorded else "recorded already"


async def _payment_failed(event_id: str, intent: dict[str, Any], now: datetime) -> str | None:
    charge = await _charge_of(intent)
    if charge is None:
        return None
    if charge["status"] != "declined":
        # A success recorded (an event arriving late) or a request still asking: nothing to undo.
        return f"charge {charge['status']}: unchanged"
    invoice = await Invoice.select(Invoice.company).where(Invoice.id == charge["invoice"]).first()
    error = intent.get("last_payment_error") or {}
    await audit.record(
        None,
        "invoice.charge_failed",
        invoice["company"] if invoice else None,
        now,
        {
            "invoice": charge["invoice"],
            "attempt": charge["attempt"],
            "reference": intent.get("id"),
            "decline_reason": str(error.get("message") or "")[:200],
        },
        dedupe_key=f"stripe:{event_id}",
    )
    return "failure audited"


async def _refunded(event_id: str, obj: dict[str, Any], now: datetime) -> str | None:
    charge = await _charge_of_payment(obj)
    if charge is None:
        return None
    invoice = await Invoice.select(Invoice.company, Invoice.number).where(Invoice.id == charge["invoice"]).first()
    await audit.record(
        None,
        "invoice.refunded",
        invoice["company"] if invoice else None,
        now,
        {
            "invoice": charge["invoice"],
            "number": format_invoice_number(invoice["number"]) if invoice else "",
            "reference": obj.get("payment_intent") if isinstance(obj.get("payment_intent"), str) else None,
            "amount_refunded_cents": obj.get("amount_refunded"),
            "currency": str(obj.get("currency", "")).upper(),
        },
        dedupe_key=f"stripe:{event_id}",
    )
    total = obj.get("amount_refunded")
    if not isinstance(total, int) or str(obj.get("currency", "")).upper() != charge["currency"]:
        return "refund audited; amount not understood"
    return await refunds.record_outside_refund(charge, total, now)


async def _disputed(event_id: str, dispute: dict[str, Any], now: datetime) -> str | None:
    charge = await _charge_of_payment(dispute)
    if charge is None:
        return None
    invoice = await Invoice.select().where(Invoice.id == charge["invoice"]).first()
    if invoice is None:
        return None
    names = {
        c["id"]: c["name"]
        for c in await Company.select(Company.id, Company.name).where(
            Company.id.is_in([invoice["company"], invoice["partner"]])
        )
    }
    number = format_invoice_number(invoice["number"])
    amount = money.format_money(int(dispute.get("amount") or 0), str(dispute.get("currency", "")).upper())
    reason = str(dispute.get("reason") or "not given").replace("_", " ")
    due = (dispute.get("evidence_details") or {}).get("due_by")
    await audit.record(
        None,
        "invoice.disputed",
        invoice["company"],
        now,
        {"invoice": invoice["id"], "number": number, "dispute": dispute.get("id"), "reason": reason},
        dedupe_key=f"stripe:{event_id}",
    )
    await queue_kind(
        "payment_disputed",
        invoice["partner"],
        await outbox.managers_of(invoice["partner"]),
        {
            "company_name": names.get(invoice["company"], ""),
            "invoice_number": number,
            "invoice_id": invoice["id"],
            "amount": amount,
            "reason": reason,
            "answer_by": datetime.fromtimestamp(due, UTC) if isinstance(due, int) else None,
        },
        now,
        dedupe=f"payment_disputed:{dispute.get('id') or event_id}",
    )
    return "dispute audited, account managers e-mailed"


def _card_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The card's details: a PaymentMethod's `card`, a Source's `card`, or a Card itself."""
    card = obj.get("card")
    return card if isinstance(card, dict) else obj


async def _card_changed(event_id: str, obj: dict[str, Any], now: datetime) -> str | None:
    token = obj.get("id")
    if not isinstance(token, str) or not token:
        return None
    account = await BillingAccount.select().where(BillingAccount.card_token == token).first()
    if account is None:
        return None
    card = _card_of(obj)
    try:
        year, month = int(card["exp_year"]), int(card["exp_month"])
    except (KeyError, TypeError, ValueError):
        return None
    if not 1 <= month <= 12:
        return None
    expires = f"{year:04d}-{month:02d}"
    changes: dict[Any, Any] = {BillingAccount.card_expires: expires}
    if isinstance(card.get("last4"), str) and len(card["last4"]) == 4:
        changes[BillingAccount.card_last4] = card["last4"]
    await BillingAccount.update(changes).where(BillingAccount.id == account["id"])
    renews = await _online_renewal(account["company"], now)
    if renews is None or (year, month) >= (renews["term_end"].year, renews["term_end"].month):
        return "card details updated"
    last4 = changes.get(BillingAccount.card_last4, account["card_last4"])
    company = await Company.select(Company.name).where(Company.id == account["company"]).first()
    await queue_kind(
        "card_expiring",
        account["company"],
        await outbox.managers_of(account["company"]),
        {
            "company_id": account["company"],
            "company_name": company["name"] if company else "",
            "renews_on": renews["term_end"],
            "last4": last4,
            "expires": f"{month:02d}/{year:04d}",
        },
        now,
        dedupe=f"card_expiring:{renews['id']}:{renews['term_end'].astimezone(UTC).isoformat()}:{token}:{expires}",
    )
    return "card details updated, managers e-mailed"


async def _online_renewal(company_id: int, now: datetime) -> dict[str, Any] | None:
    """The company's subscription that will charge the card when it renews, if any
    (what the renewal job takes: online, active, renewing itself)."""
    return (
        await Subscription.select(Subscription.id, Subscription.term_end)
        .where(
            (Subscription.company == company_id)
            & (Subscription.status == SubscriptionStatus.ACTIVE)
            & (Subscription.method == "online")
            & (Subscription.auto_renew == True)  # noqa: E712
            & (Subscription.term_end > now)
        )
        .order_by(Subscription.term_end)
        .first()
    )


_HANDLERS: dict[str, Callable[[str, dict[str, Any], datetime], Awaitable[str | None]]] = {
    "payment_intent.payment_failed": _payment_failed,
    "charge.refunded": _refunded,
    "charge.dispute.created": _disputed,
    **dict.fromkeys(CARD_EVENTS, _card_changed),
}
