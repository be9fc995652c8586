"""Online subscriptions renewed by the job: a chunk claimed under a lease, its
renewal invoices issued, each card asked once outside any transaction, the
answers written by next_term.record."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from portal import db
from portal.domain.billing import money, payments, quotes, refunds
from portal.domain.billing.renewal import invoicing, next_term, schedule
from portal.domain.billing.renewal.chunk import NO_CARD, Renewal, id_list
from portal.tables import Company
from portal.tables.billing import BillingAccount, Charge, Invoice, InvoiceStatus

log = logging.getLogger("portal.billing.renewal")
# Cards asked at once in a chunk. A processor across the network (Stripe: a
# PaymentMethod read and a PaymentIntent, a fraction of a second) asked 500
# times one after another outlasts the job that asks (arq cancels it at 300 s,
# before any answer is recorded) and the chunk's lease.
ASK_AT_ONCE = 8


def _due_online(now: datetime) -> tuple[str, list[Any]]:
    sql = (
        "SELECT * FROM subscription WHERE method = 'online' AND status = 'active' AND auto_renew "
        "AND term_end IS NOT NULL AND term_end <= {} AND (next_charge_at IS NULL OR next_charge_at <= {})"
    )
    return sql, [now + schedule.DUE_AHEAD, now]


async def count_due(now: datetime) -> int:
    """Online subscriptions `renew_due` would take now (for spreading them over workers)."""
    sql, args = _due_online(now)
    rows = await Company.raw(f"SELECT COUNT(*) AS n FROM ({sql}) AS due", *args)
    return int(rows[0]["n"])


async def renew_due(
    now: datetime, *, limit: int = 500, processor: payments.CardProcessor, ask_for_s: float | None = None
) -> dict[str, int]:
    """One chunk of due online subscriptions: invoiced, charged, provisioned or
    scheduled for a retry. Returns counts: claimed, renewed, declined, lapsed,
    pending (the processor did not answer: the lease brings them back, asked with
    the same keys), released (not asked within `ask_for_s` seconds: due again at
    once, for the next chunk to take)."""
    renewals = await _claim(now, limit)
    counts = {"claimed": len(renewals), "renewed": 0, "declined": 0, "lapsed": 0, "pending": 0, "released": 0}
    if not renewals:
        return counts
    unasked = await _ask(renewals, processor, None if ask_for_s is None else time.monotonic() + ask_for_s)
    await next_term.record(now, renewals)
    counts["released"] = await _release(unasked, now)
    # Money taken for a renewal invoice voided meanwhile, given back.
    await refunds.send_waiting(now, processor=processor, invoice_ids=[r.invoice["id"] for r in renewals])
    for renewal in renewals:
        if renewal.outcome == "paid":
            counts["renewed"] += 1
        elif renewal.outcome == "declined":
            counts["lapsed" if renewal.attempt >= schedule.ATTEMPTS else "declined"] += 1
        elif renewal not in unasked:
            counts["pending"] += 1
    return counts


async def _release(unasked: list[Renewal], now: datetime) -> int:
    """Renewals whose card was not asked: due again now rather than at the lease's end,
    their charge row left as one no worker is asking (the next claim takes it over and
    asks with its key, which no processor has seen yet)."""
    if not unasked:
        return 0
    async with db.write_transaction():
        await Company.raw(
            f"UPDATE subscription SET next_charge_at = NULL WHERE id IN ({id_list([r.sub['id'] for r in unasked])})"
        )
        await Charge.update({Charge.attempted_at: now - payments.PENDING_LEASE}).where(
            Charge.id.is_in([r.charge["id"] for r in unasked if r.charge]) & (Charge.status == "pending")
        )
    return len(unasked)


async def _ask(renewals: list[Renewal], processor: payments.CardProcessor, deadline: float | None) -> list[Renewal]:
    """Each card of the chunk asked once, ASK_AT_ONCE at a time; none asked after
    `deadline`. Returns the renewals not asked."""
    gate = asyncio.Semaphore(ASK_AT_ONCE)
    unasked: list[Renewal] = []

    async def ask(renewal: Renewal) -> None:
        assert renewal.token is not None and renewal.charge is not None
        async with gate:
            if deadline is not None and time.monotonic() >= deadline:
                unasked.append(renewal)
                return
            try:
                result = await processor.charge(
                    renewal.token,
                    renewal.invoice["total_cents"],
                    renewal.invoice["currency"],
                    renewal.charge["idempotency_key"],
                )
            except Exception:
                # Unanswered: the charge stays pending and the lease brings it back to be asked again with its key.
                log.exception("card processor failed", extra={"charge": renewal.charge["idempotency_key"]})
                return
        renewal.outcome = "paid" if result.ok else "declined"
        renewal.reference = result.reference
        renewal.reason = None if result.ok else (result.decline_reason or payments.CARD_DECLINED)[:200]

    await asyncio.gather(*(ask(r) for r in renewals if r.ask))
    return unasked


async def _claim(now: datetime, limit: int) -> list[Renewal]:
    """Pick a chunk and hold it for schedule.LEASE; issue its renewal invoices (or find
    them) and write each attempt's charge row, all in one short transaction."""
    sql, args = _due_online(now)
    async with db.write_transaction():
        subs = await Company.raw(f"{sql} ORDER BY term_end, id LIMIT {int(limit)}{db.skip_locked()}", *args)
        if not subs:
            return []
        ids = [s["id"] for s in subs]
        await Company.raw(
            f"UPDATE subscription SET next_charge_at = {{}} WHERE id IN ({id_list(ids)})", now + schedule.LEASE
        )
        sellers = await invoicing.sellers({s["partner"] for s in subs})
        invoices = await invoicing.renewal_invoices(subs, sellers, now)
        accounts = {
            a["company"]: a
            for a in await BillingAccount.select(
                BillingAccount.company, BillingAccount.card_token, BillingAccount.card_last4
            ).where(BillingAccount.company.is_in([s["company"] for s in subs]))
        }
        # The seats are those of the invoice charged, which may have been issued (and
        # priced) before the subscription last changed.
        billed = await quotes.billed_terms(i["id"] for i in invoices.values())
        renewals = []
        for sub in subs:
            items = sellers.items[sub["partner"]]
            invoice = invoices[sub["id"]]
            term = billed.get(invoice["id"]) or quotes.Billed(
                sub["tier"], schedule.next_count(sub, "extra_users"), schedule.next_count(sub, "read_only_users")
            )
            tier = items[term.tier]
            account = accounts.get(sub["company"], {})
            renewals.append(
                Renewal(
                    sub=sub,
                    invoice=invoice,
                    attempt=sub["renewal_attempts"] + 1,
                    seats=tier["included_users"] + term.extra_users,
                    tier_name=tier["name"],
                    new_end=money.term_end(sub["term_end"]),
                    tier=term.tier,
                    extra_users=term.extra_users,
                    read_only_users=term.read_only_users,
                    token=account.get("card_token"),
                    card_last4=account.get("card_last4"),
                )
            )
        await _open_charges(renewals, now)
    return renewals


async def _open_charges(renewals: list[Renewal], now: datetime) -> None:
    """Each renewal's charge row, as payments.charge_invoice opens one and under the
    same row locks, so that a customer's "Pay Online" and the job never have two
    attempts of an invoice open: the invoice's open (pending) attempt if it has one
    (another request asking now: left to it; a worker gone: asked again with its key),
    else a new attempt numbered after the invoice's last (payments.next_attempt),
    written pending before the processor is asked."""
    chargeable = [r for r in renewals if r.invoice["status"] == InvoiceStatus.ISSUED]
    for renewal in renewals:
        if renewal.invoice["status"] == InvoiceStatus.PAID:
            renewal.outcome, renewal.reference = "paid", renewal.invoice["payment_reference"]
        elif renewal.invoice["status"] != InvoiceStatus.ISSUED:
            # Void with nothing replacing it: nothing to charge; the retry schedule runs as for a decline.
            renewal.outcome, renewal.reason = "declined", "The renewal invoice was voided."
    if not chargeable:
        return
    invoice_ids = sorted(r.invoice["id"] for r in chargeable)
    await db.for_update(Invoice.select(Invoice.id).where(Invoice.id.is_in(invoice_ids)).order_by(Invoice.id))
    charges: dict[int, list[dict[str, Any]]] = {}
    for row in await Charge.select().where(Charge.invoice.is_in(invoice_ids)):
        charges.setdefault(row["invoice"], []).append(row)
    new_keys: dict[str, Renewal] = {}
    taken_over = []
    for renewal in chargeable:
        rows = charges.get(renewal.invoice["id"], [])
        attempt = payments.next_attempt(rows)
        key = payments.charge_key(renewal.invoice["id"], attempt)
        open_ = next((c for c in rows if c["idempotency_key"] == key), None)
        if open_ is None:
            new_keys[key] = renewal  # without a card too: the declined attempt shows under Failed charges
            continue
        renewal.charge = open_
        if open_["attempted_at"] > now - payments.PENDING_LEASE:
            continue  # someone is asking the processor about this attempt right now; its answer will do
        if renewal.token is None:
            renewal.outcome, renewal.reason = "declined", NO_CARD
        else:
            # Left pending by a worker that died while asking: asked again with the same key.
            renewal.ask = True
            taken_over.append(open_["id"])
    if taken_over:
        await Charge.update({Charge.attempted_at: now}).where(Charge.id.is_in(taken_over))
    if not new_keys:
        return
    await db.scratch_table(
        "renewal_charge",
        "invoice INTEGER, attempt INTEGER, amount_cents BIGINT, currency VARCHAR(3), idempotency_key VARCHAR(120)",
    )
    await db.copy_rows(
        "renewal_charge",
        ("invoice", "attempt", "amount_cents", "currency", "idempotency_key"),
        [
            (r.invoice["id"], int(key.rpartition(":")[2]), r.invoice["total_cents"], r.invoice["currency"], key)
            for key, r in new_keys.items()
        ],
    )
    # "WHERE true": SQLite reads ON CONFLICT after a bare SELECT … FROM as a join's ON.
    await Company.raw(
        "INSERT INTO card_charge (invoice, attempt, amount_cents, currency, status, attempted_at, idempotency_key) "
        f"SELECT invoice, attempt, amount_cents, currency, 'pending', {db.timestamp_param()}, idempotency_key "
        "FROM renewal_charge WHERE true ON CONFLICT (idempotency_key) DO NOTHING",
        now,
    )
    for row in await Charge.select().where(Charge.idempotency_key.is_in(list(new_keys))):
        renewal = new_keys[row["idempotency_key"]]
        renewal.charge = row
        if renewal.token is None:
            renewal.outcome, renewal.reason = "declined", NO_CARD
        else:
            renewal.ask = True
