"""What an invoice or a credit note says on paper, as one plain dict that the PDF
template reads (the web layer renders it): the seller as its billing settings
name it (name, address, tax id), the buyer's billing address, the lines and
totals, the dates, and, on an unpaid invoice of a customer who pays by invoice,
the seller's payment instructions.

A credit note is the same document with another title and number and the
invoice it refers to: `document()` takes both kinds, so one template prints both."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from portal.domain.access import Actor
from portal.domain.billing import credit_notes, invoices
from portal.domain.billing.seller_details import SellerDetails, seller_details
from portal.tables.billing import Subscription

STATUS_WORDS = {"issued": "Unpaid", "paid": "Paid", "void": "Void", "draft": "Draft"}


def _lines_of(text: str) -> list[str]:
    return [line for line in (text or "").splitlines() if line.strip()]


def document(
    *,
    title: str,
    number: str,
    status: str,
    issued_at: datetime | None,
    currency: str,
    lines: Iterable[Mapping[str, Any]],
    subtotal_cents: int,
    tax_rate_bp: int,
    tax_cents: int,
    total_cents: int,
    seller_name: str,
    seller: SellerDetails,
    buyer: Mapping[str, Any],
    due_at: datetime | None = None,
    paid_at: datetime | None = None,
    payment_method: str = "",
    payment_reference: str = "",
    voided_at: datetime | None = None,
    void_reason: str = "",
    term_start: datetime | None = None,
    term_end: datetime | None = None,
    refers_to: str = "",
    reason: str = "",
    pay_by_invoice: bool = False,
    status_words: str = "",
) -> dict[str, Any]:
    """The plain dict the PDF template prints. `title`: "Invoice" or "Credit note";
    `number`: "INV-00012", "CN-000001"; `refers_to`: the invoice a credit note credits;
    `buyer`: name, billing_name, address, country, billing_email; `status_words`: what
    the status says under the title (an invoice's "Unpaid", "Paid", "Void" by default; a
    credit note gives its own). Payment instructions are printed only on what is still
    to be paid by invoice."""
    return {
        "title": title,
        "number": number,
        "status": status,
        "status_words": status_words or STATUS_WORDS.get(status, status.capitalize()),
        "issued_at": issued_at,
        "due_at": due_at if status == "issued" else None,
        "paid_at": paid_at if status == "paid" else None,
        "payment_method": invoices.METHOD_LABELS.get(payment_method, payment_method or ""),
        "payment_reference": payment_reference or "",
        "voided_at": voided_at if status == "void" else None,
        "void_reason": void_reason or "",
        "term_start": term_start,
        "term_end": term_end,
        "refers_to": refers_to,
        "reason": reason,
        "currency": currency,
        "lines": [
            {
                "description": line["description"],
                "quantity": line["quantity"],
                "unit_cents": line["unit_cents"],
                "amount_cents": line["amount_cents"],
            }
            for line in lines
        ],
        "subtotal_cents": subtotal_cents,
        "tax_rate_bp": tax_rate_bp,
        "tax_cents": tax_cents,
        "total_cents": total_cents,
        "seller": {
            "name": seller.legal_name or seller_name,
            "address": _lines_of(seller.address),
            "tax_id": seller.tax_id,
        },
        "buyer": {
            "name": buyer.get("billing_name") or buyer["name"],
            # The company's own name too, when the billing name differs ("Accounts payable", a parent firm).
            "company": buyer["name"] if buyer.get("billing_name") and buyer["billing_name"] != buyer["name"] else "",
            "address": _lines_of(buyer.get("address") or ""),
            "country": buyer.get("country") or "",
            "email": buyer.get("billing_email") or "",
        },
        "payment_instructions": _lines_of(seller.payment_instructions) if pay_by_invoice and status == "issued" else [],
        "filename": f"{number}.pdf",
    }


async def _pays_by_invoice(invoice: Mapping[str, Any]) -> bool:
    """An invoice is paid by transfer or check unless its subscription pays online (a
    card on file); one without a subscription is paid by invoice too."""
    if invoice["subscription"] is None:
        return True
    row = await Subscription.select(Subscription.method).where(Subscription.id == invoice["subscription"]).first()
    return row is None or row["method"] != "online"


async def invoice_document(actor: Actor, invoice_id: int) -> dict[str, Any]:
    """The invoice as its PDF prints it; NotFound outside the actor's wing, as its page."""
    invoice = await invoices.get_invoice(actor, invoice_id)
    return document(
        title="Invoice",
        number=invoice["label"],
        status=invoice["status"],
        issued_at=invoice["issued_at"],
        due_at=invoice["due_at"],
        paid_at=invoice["paid_at"],
        payment_method=invoice["payment_method"] or "",
        payment_reference=invoice["payment_reference"] or "",
        voided_at=invoice["voided_at"],
        void_reason=invoice["void_reason"] or "",
        term_start=invoice["term_start"],
        term_end=invoice["term_end"],
        currency=invoice["currency"],
        lines=invoice["lines"],
        subtotal_cents=invoice["subtotal_cents"],
        tax_rate_bp=invoice["tax_rate_bp"],
        tax_cents=invoice["tax_cents"],
        total_cents=invoice["total_cents"],
        seller_name=invoice["seller"]["name"],
        seller=await seller_details(invoice["partner"]),
        buyer=invoice["buyer"],
        pay_by_invoice=await _pays_by_invoice(invoice),
    )


async def credit_note_document(actor: Actor, credit_note_id: int) -> dict[str, Any]:
    """A credit note as its PDF prints it, through the invoice's template: its own
    number, the invoice it credits and why; NotFound outside the actor's wing."""
    note = await credit_notes.get_credit_note(actor, credit_note_id)
    refund = note["refund"] or {}
    how = "to the card" + (f" ending {refund['card_last4']}" if refund.get("card_last4") else "")
    return document(
        title="Credit note",
        number=note["label"],
        status="issued",
        status_words="Refunded " + (how if refund.get("method") == "card" else "by the seller"),
        issued_at=note["issued_at"],
        currency=note["currency"],
        lines=note["lines"],
        subtotal_cents=note["subtotal_cents"],
        tax_rate_bp=note["tax_rate_bp"],
        tax_cents=note["tax_cents"],
        total_cents=note["total_cents"],
        seller_name=note["seller"]["name"],
        seller=await seller_details(note["partner"]),
        buyer=note["buyer"],
        refers_to=note["invoice"]["label"],
        reason=note["reason"],
    )
