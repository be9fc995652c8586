"""Refunds: partner staff give back all or part of a paid invoice, with a reason.

Each refund issues a credit note (credit_notes.py) and gives the money back the way
it came: a card payment taken by the processor is refunded to that card through the
processor; a payment recorded by hand (bank transfer, check, money order, card by
phone) is recorded as money the seller is to return by hand. The sum of an
invoice's refunds never exceeds what was paid.

Like a charge (payments.charge_invoice), a card refund is written before the
processor is asked, keyed, and the processor is asked outside any transaction:

1. A short transaction locks the invoice (after its subscription: locks.py's
   order), writes the refund row "pending" under its key, or finds it: the same
   confirmation arriving again (ten at once) answers with the first one's refund.
2. The processor is asked with the row's key, which it answers once.
3. A short transaction records the answer: succeeded (the credit note issued, the
   customer's managers e-mailed) or failed (nothing credited, the amount free to
   refund again). A refund whose worker died while asking is asked again, with
   the same key, once its lease ran out (the billing tick).

Money taken for an invoice voided meanwhile (a charge that succeeded after its
invoice was voided) is refunded in full, automatically, without a credit note: a
void invoice asks for nothing, so there is nothing to credit; the refund row is the
record of it, and the subscription leaves the partner's Failed charges list once
the refund succeeded."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from portal import db
from portal.domain import audit, outbox
from portal.domain.access import Actor, Capability, may_act_on, require, require_partner_manager
from portal.domain.billing import credit_notes, invoices, money
from portal.domain.billing.quotes import refuse_read_only
from portal.domain.emails.queue import queue_kind
from portal.domain.errors import NotFound, ValidationFailed
from portal.tables import Company
from portal.tables.billing import BillingAccount, Charge, CreditNote, Invoice, InvoiceStatus, Refund

if TYPE_CHECKING:
    from portal.domain.billing.payments import CardProcessor, RefundResult

LEASE = invoices.PAYMENT_LEASE
# Refunds that count against what is left to refund: done, or being done.
HOLDING = ["pending", "succeeded"]
VOID_REASON = "The invoice was void when its payment was taken."
NOT_PAID = "Only a paid invoice can be refunded."
NOTHING_LEFT = "Nothing is left to refund on this invoice."
PROCESSOR_AWAY = "The card processor did not answer: the refund is pending and is tried again within minutes."


def clean_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed({"reason": "Say why the money is refunded."})
    if len(reason) > 300:
        raise ValidationFailed({"reason": "Use at most 300 characters."})
    return reason


def may_refund(actor: Actor) -> bool:
    """Who sees the Refund action: partner staff who may change things."""
    return actor.is_partner_manager and not actor.read_only


async def _paid_charge(invoice: dict[str, Any]) -> dict[str, Any] | None:
    """The card charge that paid the invoice through the processor, if it was paid so."""
    if invoice["payment_method"] != "card":
        return None
    return (
        await Charge.select()
        .where((Charge.invoice == invoice["id"]) & (Charge.status == "succeeded"))
        .order_by(Charge.id, ascending=False)
        .first()
    )


async def _refunded(invoice_id: int) -> int:
    rows = await Refund.select(Refund.amount_cents).where((Refund.invoice == invoice_id) & Refund.status.is_in(HOLDING))
    return sum(row["amount_cents"] for row in rows)


async def _card_last4(company_id: int) -> str | None:
    row = await BillingAccount.select(BillingAccount.card_last4).where(BillingAccount.company == company_id).first()
    return row["card_last4"] if row else None


async def refundable(actor: Actor, invoice_id: int) -> dict[str, Any]:
    """What a refund of the invoice would do, for its form and confirmation:
    {"invoice", "paid_cents", "refunded_cents", "left_cents", "method" ("card":
    back to the card through the processor | "by_hand"), "card_last4"}."""
    invoice = await Invoice.select().where(Invoice.id == invoice_id).first()
    if invoice is None or not may_act_on(actor, invoice["company_path"]):
        raise NotFound("No such invoice.")
    paid = invoice["total_cents"] if invoice["status"] == InvoiceStatus.PAID else 0
    refunded = await _refunded(invoice_id)
    charge = await _paid_charge(invoice)
    return {
        "invoice": invoice,
        "paid_cents": paid,
        "refunded_cents": refunded,
        "left_cents": max(0, paid - refunded),
        "method": "card" if charge else "by_hand",
        "card_last4": await _card_last4(invoice["company"]) if charge else None,
    }


def check_amount(state: dict[str, Any], amount_cents: int) -> None:
    """ValidationFailed({"amount": …}) unless `amount_cents` may be refunded of the
    invoice in `state` (refundable's): paid, and no more than is left."""
    invoice = state["invoice"]
    if invoice["status"] != InvoiceStatus.PAID:
        raise ValidationFailed({"amount": NOT_PAID})
    left = state["left_cents"]
    if left <= 0:
        raise ValidationFailed({"amount": NOTHING_LEFT})
    if not 0 < amount_cents <= left:
        most = money.format_money(left, invoice["currency"])
        raise ValidationFailed({"amount": f"Enter an amount from 0.01 to {most}."})


def _key(invoice_id: int, key: str) -> str:
    return f"refund:{invoice_id}:{key[:64]}"


async def refund(
    actor: Actor,
    invoice_id: int,
    amount_cents: int,
    reason: str,
    key: str,
    now: datetime,
    *,
    processor: CardProcessor,
) -> dict[str, Any]:
    """Refund `amount_cents` of a paid invoice, with a reason; `key`: the confirmation's
    (the same confirmation arriving again answers with the first's refund). Returns
    {"refund", "credit_note" (or None while pending or failed), "repeat"}.
    Partner staff who may change things, on an invoice under their wing, only."""
    refuse_read_only(actor)
    if not key:
        raise ValueError("a refund needs its confirmation's key")
    async with db.write_transaction():
        invoice = await invoices.lock_with_subscription(invoice_id)
        if invoice is None or not may_act_on(actor, invoice["company_path"]):
            raise NotFound("No such invoice.")
        require_partner_manager(actor)
        require(actor, Capability.REFUNDS)
        existing = await Refund.select().where(Refund.idempotency_key == _key(invoice_id, key)).first()
        if existing is not None:
            if not _lease_ran_out(existing, now):
                return await _answer(existing, repeat=True)
            await Refund.update({Refund.attempted_at: now}).where(Refund.id == existing["id"])
            row = existing
        else:
            row = await _open(actor, invoice, amount_cents, clean_reason(reason), key, now)
            if row["method"] == "by_hand":
                return await _answer(row, repeat=False)
    return await _ask(row, now, processor, actor=actor)


def _lease_ran_out(row: dict[str, Any], now: datetime) -> bool:
    return row["status"] == "pending" and (row["attempted_at"] is None or row["attempted_at"] <= now - LEASE)


async def _open(
    actor: Actor, invoice: dict[str, Any], amount_cents: int, reason: str, key: str, now: datetime
) -> dict[str, Any]:
    """Check the refund against the locked invoice and write its row: pending for a
    card, done at once (credit note, e-mail) for a payment recorded by hand."""
    check_amount(
        {"invoice": invoice, "left_cents": invoice["total_cents"] - await _refunded(invoice["id"])}, amount_cents
    )
    charge = await _paid_charge(invoice)
    by_hand = charge is None
    row = (
        await Refund.insert(
            Refund(
                invoice=invoice["id"],
                company=invoice["company"],
                company_path=invoice["company_path"],
                charge=charge["id"] if charge else None,
                method="by_hand" if by_hand else "card",
                amount_cents=amount_cents,
                currency=invoice["currency"],
                reason=reason,
                status="succeeded" if by_hand else "pending",
                requested_by=actor.user_id,
                requested_at=now,
                attempted_at=now,
                settled_at=now if by_hand else None,
                idempotency_key=_key(invoice["id"], key),
            )
        ).returning(*Refund.all_columns())
    )[0]
    if by_hand:
        return await _succeeded(row, invoice, None, actor, now)
    return row


async def _ask(row: dict[str, Any], now: datetime, processor: CardProcessor, *, actor: Actor | None) -> dict[str, Any]:
    charge = await Charge.select(Charge.processor_ref).where(Charge.id == row["charge"]).first()
    reference = charge["processor_ref"] if charge else None
    if not reference:
        result: RefundResult | None = None
    else:
        try:
            result = await processor.refund(reference, row["amount_cents"], row["currency"], row["idempotency_key"])
        except Exception as exc:  # the processor unreachable: the row stays pending, asked again after its lease
            await audit.record(
                actor,
                "refund.processor_away",
                row["company"],
                now,
                {"refund": row["id"], "invoice": row["invoice"], "error": str(exc)[:200]},
            )
            raise ValidationFailed({"refund": PROCESSOR_AWAY}) from exc
    async with db.write_transaction():
        invoice = await invoices.lock_with_subscription(row["invoice"])
        current = await Refund.select().where(Refund.id == row["id"]).first()
        assert invoice is not None and current is not None, "rows of foreign keys"
        if current["status"] != "pending":
            return await _answer(current, repeat=True)  # recorded meanwhile by another try
        if result is None or not result.ok:
            failure = (result.failure if result else None) or "The payment has no reference at the processor."
            await Refund.update({Refund.status: "failed", Refund.failure: failure[:200], Refund.settled_at: now}).where(
                Refund.id == row["id"]
            )
            await audit.record(
                actor,
                "refund.failed",
                row["company"],
                now,
                {**_detail(current, invoice), "failure": failure},
            )
            failed = await Refund.select().where(Refund.id == row["id"]).first()
            assert failed is not None
            return await _answer(failed, repeat=False)
        await Refund.update({Refund.processor_ref: result.reference}).where(Refund.id == row["id"])
        done = await _succeeded({**current, "processor_ref": result.reference}, invoice, result.reference, actor, now)
        return await _answer(done, repeat=False)


def _detail(row: dict[str, Any], invoice: dict[str, Any]) -> dict[str, Any]:
    return {
        "refund": row["id"],
        "invoice": invoice["id"],
        "number": invoices.format_invoice_number(invoice["number"]),
        "amount_cents": row["amount_cents"],
        "currency": row["currency"],
        "method": row["method"],
        "reason": row["reason"],
    }


async def _succeeded(
    row: dict[str, Any], invoice: dict[str, Any], reference: str | None, actor: Actor | None, now: datetime
) -> dict[str, Any]:
    """Record a refund done, inside the caller's transaction holding the invoice: the
    credit note (a paid invoice's refund), the audit entry, the customer's e-mail."""
    note = None
    if invoice["status"] == InvoiceStatus.PAID:
        before = await _refunded_before(row)
        lines = await credit_notes.invoice_lines(invoice["id"])
        credit = credit_notes.credit_for(invoice, lines, before, row["amount_cents"])
        note = await credit_notes.issue(invoice=invoice, credit=credit, reason=row["reason"], actor=actor, now=now)
    await Refund.update(
        {
            Refund.status: "succeeded",
            Refund.settled_at: now,
            Refund.credit_note: note["id"] if note else None,
            Refund.failure: None,
        }
    ).where(Refund.id == row["id"])
    detail = {**_detail(row, invoice), "reference": reference, "credit_note": note["label"] if note else None}
    await audit.record(actor, "invoice.refund", invoice["company"], now, detail)
    await _notify(row, invoice, note, now)
    done = await Refund.select().where(Refund.id == row["id"]).first()
    assert done is not None
    return done


async def _refunded_before(row: dict[str, Any]) -> int:
    """What the invoice's earlier refunds credited (those with a credit note): the
    tax split of this one continues theirs."""
    rows = await Refund.select(Refund.amount_cents).where(
        (Refund.invoice == row["invoice"])
        & (Refund.status == "succeeded")
        & Refund.credit_note.is_not_null()
        & (Refund.id != row["id"])
    )
    return sum(r["amount_cents"] for r in rows)


async def _notify(row: dict[str, Any], invoice: dict[str, Any], note: dict[str, Any] | None, now: datetime) -> None:
    company = await Company.select(Company.name).where(Company.id == invoice["company"]).first()
    number = invoices.format_invoice_number(invoice["number"])
    amount = money.format_money(row["amount_cents"], row["currency"])
    await queue_kind(
        "refund_issued",
        invoice["company"],
        await outbox.managers_of(invoice["company"]),
        {
            "amount": amount,
            "number": number,
            "company_name": company["name"] if company else "",
            "reason": row["reason"],
            "to_card": row["method"] == "card",
            "credit_note": note["label"] if note else "",
            "invoice_id": invoice["id"],
        },
        now,
        f"refund_issued:{row['id']}",
    )


async def _answer(row: dict[str, Any], *, repeat: bool) -> dict[str, Any]:
    note = None
    if row["credit_note"] is not None:
        found = await CreditNote.select().where(CreditNote.id == row["credit_note"]).first()
        if found is not None:
            note = {**found, "label": credit_notes.format_credit_note_number(found["number"])}
    return {"refund": row, "credit_note": note, "repeat": repeat}


async def of_invoice(invoice_id: int) -> list[dict[str, Any]]:
    """An invoice's refunds, oldest first, each with its credit note's label if any;
    the caller checked the invoice's wing."""
    rows = await Refund.select().where(Refund.invoice == invoice_id).order_by(Refund.id)
    notes = {n["id"]: n for n in await credit_notes.of_invoice(invoice_id)}
    for row in rows:
        row["credit_note_label"] = notes[row["credit_note"]]["label"] if row["credit_note"] in notes else None
    return rows


async def get_refund(actor: Actor, refund_id: int) -> dict[str, Any]:
    row = await Refund.select().where(Refund.id == refund_id).first()
    if row is None or not may_act_on(actor, row["company_path"]):
        raise NotFound("No such refund.")
    return await _answer(row, repeat=False)


# --- Refunds made at the processor (Stripe's dashboard) ------------------------------

OUTSIDE_REASON = "Refunded at the card processor, outside the portal."


async def record_outside_refund(charge: dict[str, Any], refunded_cents: int, now: datetime) -> str:
    """The processor says `refunded_cents` of a charge are refunded in all: what its
    refunds in the portal (done or being done) do not account for was refunded at
    the processor (Stripe's dashboard), and is recorded as a refund, with a credit
    note when its invoice is paid. Inside the caller's transaction. Keyed by the
    charge and that total, so the same report again records nothing more.
    Returns what it did."""
    invoice = await invoices.lock_with_subscription(charge["invoice"])
    assert invoice is not None, "a charge's invoice is a foreign key"
    rows = await Refund.select(Refund.amount_cents).where(
        (Refund.charge == charge["id"]) & Refund.status.is_in(HOLDING)
    )
    extra = refunded_cents - sum(row["amount_cents"] for row in rows)
    if extra <= 0:
        return "refunds of the portal's: nothing more to record"
    if invoice["status"] == InvoiceStatus.PAID:
        extra = min(extra, invoice["total_cents"] - await _refunded(invoice["id"]))
        if extra <= 0:
            return "invoice refunded in full already: nothing more to record"
    row = (
        await Refund.insert(
            Refund(
                invoice=invoice["id"],
                company=invoice["company"],
                company_path=invoice["company_path"],
                charge=charge["id"],
                method="card",
                amount_cents=extra,
                currency=charge["currency"],
                reason=OUTSIDE_REASON,
                status="succeeded",
                requested_at=now,
                attempted_at=now,
                settled_at=now,
                idempotency_key=f"processor:{charge['id']}:{refunded_cents}",
            )
        )
        .on_conflict(action="DO NOTHING")
        .returning(*Refund.all_columns())
    )
    if not row:
        return "recorded already"
    done = await _succeeded(row[0], invoice, None, None, now)
    return "refund recorded" + (" with a credit note" if done["credit_note"] else "")


# --- Money taken for an invoice voided meanwhile ------------------------------------


async def queue_void_refunds(charges: Iterable[dict[str, Any]], now: datetime) -> list[int]:
    """Full refunds of charges that took money for a void invoice, written (pending,
    not asked yet) inside the caller's transaction; `send_waiting` asks the processor.
    Returns the refunds' ids; a charge already refunded writes nothing."""
    ids: list[int] = []
    for charge in charges:
        invoice = await Invoice.select().where(Invoice.id == charge["invoice"]).first()
        assert invoice is not None, "a charge's invoice is a foreign key"
        written = (
            await Refund.insert(
                Refund(
                    invoice=invoice["id"],
                    company=invoice["company"],
                    company_path=invoice["company_path"],
                    charge=charge["id"],
                    method="card",
                    amount_cents=charge["amount_cents"],
                    currency=charge["currency"],
                    reason=VOID_REASON,
                    status="pending",
                    requested_at=now,
                    attempted_at=None,
                    idempotency_key=f"void:{charge['idempotency_key']}",
                )
            )
            .on_conflict(action="DO NOTHING")
            .returning(Refund.id)
        )
        ids.extend(row["id"] for row in written)
    return ids


async def send_waiting(
    now: datetime, *, processor: CardProcessor, invoice_ids: Iterable[int] | None = None, limit: int = 50
) -> int:
    """Ask the processor for refunds not asked yet, or whose asking died (lease run
    out): the automatic refunds of money taken for void invoices, and any refund a
    crash left pending. `invoice_ids`: only these invoices' (a caller that just
    queued refunds). Returns how many were settled."""
    query = Refund.select().where(
        (Refund.status == "pending") & (Refund.attempted_at.is_null() | (Refund.attempted_at <= now - LEASE))
    )
    if invoice_ids is not None:
        wanted = sorted(set(invoice_ids))
        if not wanted:
            return 0
        query = query.where(Refund.invoice.is_in(wanted))
    settled = 0
    for row in await query.order_by(Refund.id).limit(limit):
        async with db.write_transaction():
            # Claimed for this try under the lease, so two ticks do not both ask.
            claimed = (
                await Refund.update({Refund.attempted_at: now})
                .where(
                    (Refund.id == row["id"])
                    & (Refund.status == "pending")
                    & (Refund.attempted_at.is_null() | (Refund.attempted_at <= now - LEASE))
                )
                .returning(Refund.id)
            )
        if not claimed:
            continue
        try:
            await _ask(row, now, processor, actor=None)
        except ValidationFailed:
            continue  # the processor away: left pending for the next tick
        settled += 1
    return settled
