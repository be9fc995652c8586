"""Credit notes: what a refund gives back of a paid invoice, issued with the seller's
next credit-note number and never edited.

Numbers are per seller and gapless, as invoices' are, from a counter of their own
(billing_profile.next_credit_note_number) taken under the profile row's lock in the
transaction that writes the note: concurrent issuers queue on the row, and a
rolled-back issue gives its number back.

A refund of part of an invoice credits its tax in proportion, rounded so that the
notes of one invoice add up to it exactly: the tax credited after all refunds so far
is round(refunded × invoice tax / invoice total), half-up, and each note credits the
difference that its refund makes to it. Refunding the whole invoice, at once or in
parts, so credits exactly its subtotal and its tax. A note's subtotal is spread over
the invoice's lines by the same rule (each line gets what the running total of the
lines up to it adds), so its lines add up to its subtotal to the cent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, may_act_on
from portal.domain.billing.invoices import Line, format_invoice_number
from portal.domain.errors import NotFound
from portal.tables import Company
from portal.tables.billing import (
    BillingAccount,
    BillingProfile,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    Refund,
)


def format_credit_note_number(number: int) -> str:
    """6 digits, more when needed: 1 → "CN-000001"."""
    return f"CN-{number:06d}"


@dataclass(frozen=True)
class Credit:
    """What one credit note gives back: its lines (adding up to the subtotal) and tax."""

    lines: tuple[Line, ...]
    subtotal_cents: int
    tax_cents: int

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.tax_cents


def _share(part: int, numerator: int, denominator: int) -> int:
    return int((Decimal(part) * numerator / denominator).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def credit_for(
    invoice: dict[str, Any], lines: Sequence[dict[str, Any]], refunded_before_cents: int, amount_cents: int
) -> Credit:
    """The credit of refunding `amount_cents` of `invoice` (its total with tax) after
    `refunded_before_cents` were credited already; `lines`: the invoice's, in order."""
    total = invoice["total_cents"]
    if not 0 < amount_cents <= total - refunded_before_cents:
        raise ValueError(f"cannot credit {amount_cents} of {total} after {refunded_before_cents}")

    def tax_after(refunded: int) -> int:
        return _share(refunded, invoice["tax_cents"], total)

    tax = tax_after(refunded_before_cents + amount_cents) - tax_after(refunded_before_cents)
    subtotal = amount_cents - tax
    base = sum(line["amount_cents"] for line in lines)
    credited: list[Line] = []
    running = given = 0
    for line in lines:
        running += line["amount_cents"]
        upto = _share(subtotal, running, base) if base else (subtotal if line is lines[-1] else 0)
        amount, given = upto - given, upto
        if amount == line["amount_cents"]:
            credited.append(Line(line["code"], line["description"], line["quantity"], line["unit_cents"]))
        elif amount > 0:
            credited.append(Line(line["code"], line["description"], 1, amount))
    if not credited:  # a cent of tax alone: the note still says what it is for
        first = lines[0]
        credited.append(Line(first["code"], first["description"], 1, 0))
    return Credit(tuple(credited), subtotal, tax)


async def _lock_profile(partner_id: int) -> dict[str, Any]:
    row = await db.for_update(BillingProfile.select().where(BillingProfile.company == partner_id)).first()
    # The seller issued the invoice being credited: its profile exists.
    assert row is not None, f"no billing profile for {partner_id}"
    return row


async def issue(
    *, invoice: dict[str, Any], credit: Credit, reason: str, actor: Actor | None, now: datetime
) -> dict[str, Any]:
    """Issue the credit note, with the seller's next number, inside the caller's
    transaction (which holds the invoice's lock); audited."""
    seller = await _lock_profile(invoice["partner"])
    number = seller["next_credit_note_number"]
    await BillingProfile.update({BillingProfile.next_credit_note_number: number + 1}).where(
        BillingProfile.id == seller["id"]
    )
    note = (
        await CreditNote.insert(
            CreditNote(
                partner=invoice["partner"],
                company=invoice["company"],
                company_path=invoice["company_path"],
                invoice=invoice["id"],
                number=number,
                currency=invoice["currency"],
                subtotal_cents=credit.subtotal_cents,
                tax_rate_bp=invoice["tax_rate_bp"],
                tax_cents=credit.tax_cents,
                total_cents=credit.total_cents,
                reason=reason[:300],
                issued_at=now,
                issued_by=actor.user_id if actor else None,
            )
        ).returning(*CreditNote.all_columns())
    )[0]
    await CreditNoteLine.insert(
        *(
            CreditNoteLine(
                credit_note=note["id"],
                position=position,
                code=line.code,
                description=line.description[:300],
                quantity=line.quantity,
                unit_cents=line.unit_cents,
                amount_cents=line.amount_cents,
            )
            for position, line in enumerate(credit.lines, start=1)
        )
    )
    await audit.record(
        actor,
        "credit_note.issue",
        invoice["company"],
        now,
        {
            "credit_note": note["id"],
            "number": format_credit_note_number(number),
            "invoice": invoice["id"],
            "invoice_number": format_invoice_number(invoice["number"]),
            "total_cents": credit.total_cents,
            "tax_cents": credit.tax_cents,
            "currency": invoice["currency"],
            "reason": reason,
        },
    )
    note["label"] = format_credit_note_number(number)
    return note


async def of_invoice(invoice_id: int) -> list[dict[str, Any]]:
    """An invoice's credit notes, oldest first, labelled; the caller checked the invoice's wing."""
    rows = await CreditNote.select().where(CreditNote.invoice == invoice_id).order_by(CreditNote.number)
    for row in rows:
        row["label"] = format_credit_note_number(row["number"])
    return rows


async def get_credit_note(actor: Actor, credit_note_id: int) -> dict[str, Any]:
    """A credit note with all a printed one shows: "label", "lines", "seller" (id,
    name), "buyer" (name and billing address), "invoice" (id, label, total, paid
    on), "refund" (method "card" or "by_hand", its status, card last 4 digits when
    known). NotFound outside the actor's wing."""
    note = await CreditNote.select().where(CreditNote.id == credit_note_id).first()
    if note is None or not may_act_on(actor, note["company_path"]):
        raise NotFound("No such credit note.")
    note["label"] = format_credit_note_number(note["number"])
    note["lines"] = (
        await CreditNoteLine.select()
        .where(CreditNoteLine.credit_note == credit_note_id)
        .order_by(CreditNoteLine.position)
    )
    names = {
        c["id"]: c
        for c in await Company.select(Company.id, Company.name).where(
            Company.id.is_in([note["partner"], note["company"]])
        )
    }
    account = (
        await BillingAccount.select(
            BillingAccount.billing_name,
            BillingAccount.billing_email,
            BillingAccount.address,
            BillingAccount.country,
            BillingAccount.card_last4,
        )
        .where(BillingAccount.company == note["company"])
        .first()
    ) or {"billing_name": "", "billing_email": "", "address": "", "country": "", "card_last4": None}
    note["seller"] = names[note["partner"]]
    note["buyer"] = {**names[note["company"]], **{k: v for k, v in account.items() if k != "card_last4"}}
    invoice = (
        await Invoice.select(Invoice.id, Invoice.number, Invoice.total_cents, Invoice.paid_at, Invoice.payment_method)
        .where(Invoice.id == note["invoice"])
        .first()
    )
    assert invoice is not None, "a credit note's invoice is a foreign key"
    note["invoice"] = {**invoice, "label": format_invoice_number(invoice["number"])}
    refund = (
        await Refund.select(Refund.id, Refund.method, Refund.status, Refund.amount_cents, Refund.processor_ref)
        .where(Refund.credit_note == credit_note_id)
        .first()
    )
    note["refund"] = (
        {**refund, "card_last4": account["card_last4"] if refund["method"] == "card" else None} if refund else None
    )
    return note


async def invoice_lines(invoice_id: int) -> list[dict[str, Any]]:
    return await InvoiceLine.select().where(InvoiceLine.invoice == invoice_id).order_by(InvoiceLine.position)
