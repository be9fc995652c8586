"""Invoice subscriptions' renewals: the renewal invoice 30 days before the end
(or when the customer asks, "Request an invoice"), a reminder at 72 hours.
Paying it (settlement.record_payment) provisions the next term from the old
end, so a renewal paid early leaves no gap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal import db
from portal.domain.access import Actor
from portal.domain.billing import invoices, locks, money, quotes
from portal.domain.billing.quotes import refuse_read_only
from portal.domain.billing.renewal import invoicing, notices, schedule
from portal.domain.errors import ValidationFailed
from portal.tables import Company
from portal.tables.billing import Invoice, SubscriptionStatus


async def issue_renewal_invoices(now: datetime, *, limit: int = 500) -> dict[str, int]:
    """Invoice subscriptions: the renewal invoice from 30 days before the term's
    end (under the same key as "Request an invoice", so never two), e-mailed to
    the managers; a reminder from 72 hours before the end while it is unpaid.
    A cancellation requested and awaiting the partner stops both."""
    live = (
        "s.method = 'invoice' AND s.status = 'active' AND s.auto_renew AND s.cancel_requested_at IS NULL "
        "AND s.term_end IS NOT NULL AND s.term_end > {}"
    )
    has_invoice = (
        "EXISTS (SELECT 1 FROM invoice AS i WHERE i.subscription = s.id AND i.kind = 'renewal' "
        "AND i.term_start = s.term_end AND i.status <> 'void')"
    )
    issued: dict[int, dict[str, Any]] = {}
    async with db.write_transaction():
        subs = await Company.raw(
            f"SELECT s.* FROM subscription AS s WHERE {live} AND s.term_end <= {{}} AND NOT {has_invoice} "
            f"ORDER BY s.term_end, s.id LIMIT {int(limit)}",
            now,
            now + schedule.INVOICE_AHEAD,
        )
        if subs:
            sellers = await invoicing.sellers({s["partner"] for s in subs})
            # Under the sellers' locks: a "Request an invoice" that got in first keeps its invoice.
            taken = {
                i["idempotency_key"]
                for i in await Invoice.select(Invoice.idempotency_key).where(
                    Invoice.idempotency_key.is_in([schedule.renewal_key(s) for s in subs])
                )
            }
            subs = [s for s in subs if schedule.renewal_key(s) not in taken]
            issued = await invoicing.issue_invoices(subs, sellers, now, due_at=lambda s: s["term_end"])
            await notices.invoice_mails(list(issued.values()), {s["id"]: s for s in subs}, now, reminder=False)
    reminded = await _remind(now, live, limit)
    return {"issued": len(issued), "reminded": reminded}


async def _remind(now: datetime, live: str, limit: int) -> int:
    async with db.write_transaction():
        rows = await Company.raw(
            "SELECT i.*, s.term_end AS sub_term_end FROM subscription AS s JOIN invoice AS i "
            "ON i.subscription = s.id AND i.kind = 'renewal' AND i.term_start = s.term_end AND i.status = 'issued' "
            f"WHERE {live} AND s.term_end <= {{}} ORDER BY s.term_end, s.id LIMIT {int(limit)}",
            now,
            now + schedule.REMINDER_AHEAD,
        )
        subs = {
            r["subscription"]: {
                "id": r["subscription"],
                "term_end": r["sub_term_end"],
                "company": r["company"],
                "partner": r["partner"],
            }
            for r in rows
        }
        return await notices.invoice_mails(rows, subs, now, reminder=True)


async def request_invoice(actor: Actor, subscription_id: int, now: datetime) -> dict[str, Any]:
    """ "Request an invoice": the next term's invoice, now; one per term (asked
    twice, or issued by the renewal job, it is the same invoice). Paid, the
    next term starts where this one ends."""
    refuse_read_only(actor)
    async with db.write_transaction():
        subscription = await locks.lock_subscription(actor, subscription_id)
        if subscription["status"] != SubscriptionStatus.ACTIVE or subscription["term_end"] is None:
            raise ValidationFailed({"subscription": "Only a running subscription renews."})
        if not subscription["auto_renew"]:
            raise ValidationFailed({"subscription": "This subscription is cancelled, so it does not renew."})
        lines, _ = await quotes.renewal_lines(subscription)
        start = subscription["term_end"]
        invoice = await invoices.create_invoice(
            partner_id=subscription["partner"],
            company_id=subscription["company"],
            kind="renewal",
            lines=lines,
            now=now,
            subscription_id=subscription["id"],
            term_start=start,
            term_end=money.term_end(start),
            idempotency_key=schedule.renewal_key(subscription),
            actor=actor,
        )
    return invoice
